"""The command names and options operators' scripts rely on (design.md section 9),
whichever module of `ivrcast.cli` defines each command."""

from __future__ import annotations

from typing import Any

import typer

from ivrcast.cli import app

# design.md section 9, with the options the README and docs show for each.
COMMANDS: dict[str, set[str]] = {
    "serve": {"--config", "--host", "--port", "--dialer", "--dialers", "--demo-account"},
    "dialer": {"--config"},
    "migrate": {"--config"},
    "account create": {
        "--config",
        "--appid",
        "--accesskey",
        "--accesskey-file",
        "--callback-url",
        "--callback-secret",
        "--callback-secret-file",
        "--countries",
        "--callerids",
        "--allowed-ips",
        "--max-concurrency",
        "--default-retries",
    },
    "account list": {"--config"},
    "account disable": {"--config"},
    "account update": {
        "--config",
        "--appid",
        "--countries",
        "--callerids",
        "--allowed-ips",
        "--max-concurrency",
        "--callback-url",
        "--expires",
        "--disable",
    },
    "voice upload": {"--config", "--appid"},
    "calls export": {"--config", "--appid", "--task", "--status", "--since", "--until"},
    "callbacks replay": {"--config", "--task", "--since", "--until", "--appid"},
    "submit": {
        "--numbers",
        "--nation",
        "--voice",
        "--appid",
        "--accesskey",
        "--url",
        "--retry-rounds",
        "--retry-interval",
        "--retry-on",
    },
    "tasks watch": {"--appid", "--accesskey", "--url", "--interval"},
    "tasks pause": {"--appid", "--accesskey", "--url"},
    "tasks resume": {"--appid", "--accesskey", "--url"},
    "dnc add": {"--config", "--appid", "--global", "--nation"},
    "dnc remove": {"--config", "--appid", "--global", "--nation"},
    "dnc import": {"--config", "--appid", "--global", "--nation"},
    "dnc export": {"--config", "--appid", "--global", "--output"},
}


def commands(group: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf command of a click group (typer's own click or not), by its path."""
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            found.update(commands(command, f"{path} "))
        else:
            found[path] = command
    return found


def test_every_documented_command_keeps_its_name_and_options() -> None:
    tree = commands(typer.main.get_command(app))
    for path, options in COMMANDS.items():
        assert path in tree, path
        given = {opt for param in tree[path].params for opt in param.opts}
        assert options <= given, (path, options - given)
