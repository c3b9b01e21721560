"""The whole service as a user runs it: the `ivrcast` command in its own process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

IVRCAST = [sys.executable, "-m", "ivrcast"]


@dataclass
class RunningServer:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*IVRCAST, *args], env=self.env, capture_output=True, text=True, timeout=120
        )


def start_server(data_dir: Path, *extra: str, config: Path | None = None) -> RunningServer:
    """Start `ivrcast serve` on a free port and wait for the line that names it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "IVRCAST_DATA_DIR": str(data_dir)}
    env.pop("IVRCAST_DATABASE_URL", None)
    if config is not None:
        env["IVRCAST_CONFIG"] = str(config)
    log = data_dir / "server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*IVRCAST, "serve", "--host", "127.0.0.1", "--port", "0", *extra],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return RunningServer(found.group(1), env, process, log)
        time.sleep(0.05)  # polling a condition (the log line), with a deadline
    process.kill()
    process.wait()
    raise AssertionError("the server did not start:\n" + log.read_text(errors="replace"))


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[RunningServer]:
    """`ivrcast serve` with the API only, on SQLite in a fresh data folder."""
    server = start_server(tmp_path / "data", "--no-dialer")
    yield server
    stop_server(server)


EXAMPLE = Path(__file__).parents[1] / "data" / "seed" / "playvoice_example.php"


def run_example(tmp_path: Path, url: str, fields: dict[str, str], **numbers: int) -> dict[str, Any]:
    """Run the example with the given string `fields` and integer `numbers` replaced."""
    script = EXAMPLE.read_text()
    script = script.replace("'http://127.0.0.1:8080'", repr(url))
    for name, value in fields.items():
        script, count = re.subn(rf"('{name}'\s*=>\s*)'[^']*'", rf"\g<1>'{value}'", script)
        assert count == 1, name
    for name, number in numbers.items():
        script, count = re.subn(rf"('{name}'\s*=>\s*)\d+", rf"\g<1>{number}", script)
        if count == 0:  # not in the example: add it to the fields
            script = script.replace("    ];", f"        '{name}' => {number},\n    ];", 1)
    path = tmp_path / "example.php"
    path.write_text(script)
    result = subprocess.run(["php", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # var_dump($response) prints: string(N) "<json>"
    dumped = re.fullmatch(r'string\(\d+\) "(.*)"\s*', result.stdout, re.DOTALL)
    assert dumped, result.stdout
    body: dict[str, Any] = json.loads(dumped.group(1))
    return body
