"""The `ivrcast` command. Every command takes `--config PATH` (or `IVRCAST_CONFIG`).

The commands live by audience: `server` (migrate, serve, dialer), `admin` (account,
voice, calls, callbacks; `dnc`: the operator's, on the database) and `client` (submit, tasks:
a customer's, over HTTP). Here they get their names, which operators' scripts rely on
(design.md section 9).
"""

from __future__ import annotations

import typer

from ivrcast.cli import admin, client, dnc, server
from ivrcast.cli.common import errors
from ivrcast.errors import IvrcastError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ivrcast: batch IVR over SIP.")
account_app = typer.Typer(no_args_is_help=True, help="Manage customer accounts.")
voice_app = typer.Typer(no_args_is_help=True, help="Manage the voice library.")
calls_app = typer.Typer(no_args_is_help=True, help="Read calls.")
callbacks_app = typer.Typer(no_args_is_help=True, help="Call-record deliveries.")
tasks_app = typer.Typer(no_args_is_help=True, help="Follow, pause and resume tasks on a server.")
app.add_typer(account_app, name="account")
app.add_typer(voice_app, name="voice")
app.add_typer(calls_app, name="calls")
app.add_typer(callbacks_app, name="callbacks")
dnc_app = typer.Typer(no_args_is_help=True, help="Do-not-call lists (an account's or global).")
app.add_typer(tasks_app, name="tasks")
app.add_typer(dnc_app, name="dnc")

app.command("migrate")(server.migrate)
app.command("serve")(server.serve)
app.command("dialer")(server.run_dialer)
account_app.command("create")(admin.account_create)
account_app.command("list")(admin.account_list)
account_app.command("disable")(admin.account_disable)
account_app.command("update")(admin.account_update)
voice_app.command("upload")(admin.voice_upload)
calls_app.command("export")(admin.calls_export)
callbacks_app.command("replay")(admin.callbacks_replay)
app.command("submit")(client.submit)
tasks_app.command("watch")(client.tasks_watch)
tasks_app.command("pause")(client.tasks_pause)
dnc_app.command("add")(dnc.dnc_add)
dnc_app.command("remove")(dnc.dnc_remove)
dnc_app.command("import")(dnc.dnc_import)
dnc_app.command("export")(dnc.dnc_export)
tasks_app.command("resume")(client.tasks_resume)


def main() -> None:
    try:
        app()
    except IvrcastError as exc:
        errors.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise SystemExit(2) from None
