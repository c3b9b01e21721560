"""The `ivrcast` command. Every command takes `--config PATH` (or `IVRCAST_CONFIG`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ivrcast.clock import SystemClock
from ivrcast.config import Settings, load_settings
from ivrcast.credentials import SEALED_PREFIX, hash_secret, load_secret_key, seal_secret
from ivrcast.errors import IvrcastError
from ivrcast.logs import configure_logging
from ivrcast.private_files import private_dir
from ivrcast.store import accounts as account_store
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ivrcast: batch IVR over SIP.")
account_app = typer.Typer(no_args_is_help=True, help="Manage customer accounts.")
voice_app = typer.Typer(no_args_is_help=True, help="Manage the voice library.")
calls_app = typer.Typer(no_args_is_help=True, help="Read calls.")
callbacks_app = typer.Typer(no_args_is_help=True, help="Call-record deliveries.")
tasks_app = typer.Typer(no_args_is_help=True, help="Follow tasks on a server.")
app.add_typer(account_app, name="account")
app.add_typer(voice_app, name="voice")
app.add_typer(calls_app, name="calls")
app.add_typer(callbacks_app, name="callbacks")
app.add_typer(tasks_app, name="tasks")

UrlOption = Annotated[
    str, typer.Option(envvar="IVRCAST_URL", help="The server (its /api/yunhu is used).")
]
AppidOption = Annotated[str, typer.Option(envvar="IVRCAST_APPID", help="Your appid.")]
AccesskeyOption = Annotated[str, typer.Option(envvar="IVRCAST_ACCESSKEY", help="Your accesskey.")]

console = Console()
errors = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config file (default: $IVRCAST_CONFIG, else built-ins)."),
]


def settings_from(config: Path | None) -> Settings:
    return load_settings(config, os.environ)


def open_database(settings: Settings) -> Database:
    """The migrated database, with the data folder made private and any callback secret
    still stored in plaintext (written before they were encrypted) encrypted."""
    private_dir(settings.data_dir)
    db = Database(settings.database_url)
    upgrade_to_head(db)
    _seal_plaintext_callback_secrets(db, load_secret_key(settings))
    return db


def _seal_plaintext_callback_secrets(db: Database, key: bytes) -> None:
    """Encrypt callback secrets stored before encryption at rest. The server key is not
    the database's to know, so this is done here rather than in an Alembic revision."""
    with db.write() as conn:
        for account_id, stored in account_store.plaintext_callback_secrets(conn, SEALED_PREFIX):
            account_store.set_callback_secret(conn, account_id, seal_secret(key, stored))


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Bring the database schema up to date."""
    db = open_database(settings_from(config))
    console.print(f"schema up to date: {db.engine.url!r}")
    db.dispose()


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="Listen address (default: [server] host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port; 0 picks a free one.")] = None,
    dialer: Annotated[bool, typer.Option(help="Start the dialer process beside the API.")] = True,
    demo_account: Annotated[
        bool, typer.Option(help="On an empty database, create a demo account and voice.")
    ] = False,
) -> None:
    """Migrate, then serve the API (and start the dialer in its own process)."""
    import uvicorn

    from ivrcast.api.app import create_app
    from ivrcast.api.http_server import server_config
    from ivrcast.demo_account import ensure_demo_account

    settings = settings_from(config)
    configure_logging(settings.logging)
    db = open_database(settings)
    if demo_account:
        created = ensure_demo_account(settings, db, now=SystemClock().now())
        if created is not None:
            console.print(
                "[bold]demo account created[/bold] (also in "
                f"{settings.data_dir}/demo-account.txt)\n"
                f"  appid     = {created.appid}\n  accesskey = {created.accesskey}\n"
                f"  voice     = {created.voice}"
            )
    db.dispose()
    listener = socket.create_server(
        (host or settings.server.host, settings.server.port if port is None else port)
    )
    bound_host, bound_port = listener.getsockname()[:2]
    supervisor = DialerSupervisor(config or settings.config_path) if dialer else None
    if supervisor is not None:
        supervisor.start()
    console.print(f"ivrcast listening on http://{bound_host}:{bound_port}", highlight=False)
    server = uvicorn.Server(server_config(create_app(settings), settings))
    # uvicorn turns SIGTERM into a graceful shutdown and then raises it again with the
    # handler found at start; that handler must end this process through `finally`, or
    # the dialer child would outlive it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server.run(sockets=[listener])
    finally:
        if supervisor is not None:
            supervisor.stop(grace=settings.dialer.shutdown_grace + 5)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class DialerSupervisor:
    """Runs `python -m ivrcast.dialer` as a child and restarts it if it dies.

    The dialer and its media clock live in their own process so that API work never
    delays RTP (design section 6).

    The child must not outlive this process, however it ends: after a kill -9 nothing
    here runs, and a dialer left behind would keep dialing beside the next one. So each
    child gets the read end of a pipe whose write end only this process holds (and never
    writes to): when this process dies the kernel closes it, the child reads end-of-file
    and stops gracefully (`dialer.service.watch_parent`). A pipe rather than
    PR_SET_PDEATHSIG, which fires when the *thread* that started the child exits (the
    watcher thread restarts children) and exists on Linux only.
    """

    def __init__(self, config: Path | None) -> None:
        self.command = [sys.executable, "-m", "ivrcast.dialer"]
        if config is not None:
            self.command += ["--config", str(config)]
        self.process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None  # the write end of the current child's pipe
        self.stopping = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name="dialer-supervisor", daemon=True)

    def start(self) -> None:
        self.process = self._spawn()
        self.watcher.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        read_end, write_end = os.pipe()  # both non-inheritable: no other child gets them
        try:
            process = subprocess.Popen(
                [*self.command, "--parent-pipe", str(read_end)], pass_fds=(read_end,)
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._close_lifeline()  # the previous child's, if any: it has exited
        self._lifeline = write_end
        return process

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    def _watch(self) -> None:
        while not self.stopping.is_set():
            assert self.process is not None
            code = self.process.wait()
            if self.stopping.is_set():
                return
            logging.getLogger(__name__).error("dialer exited with %s; restarting", code)
            if self.stopping.wait(1.0):
                return
            self.process = self._spawn()

    def stop(self, *, grace: float) -> None:
        self.stopping.set()
        if self.process is None or self.process.poll() is not None:
            self._close_lifeline()
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._close_lifeline()


@app.command("dialer")
def run_dialer(config: ConfigOption = None) -> None:
    """Run the dialer alone (claims queued calls and dials them)."""
    from ivrcast.dialer.service import main

    settings = settings_from(config)
    configure_logging(settings.logging)
    open_database(settings).dispose()
    main(settings)


SecretFile = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, help="Read it from this file (first line)."),
]


def _secret(value: str | None, file: Path | None, *, option: str, prompt: str | None) -> str | None:
    """A secret from its option, from a file (kept out of `ps` and the shell's history),
    or, when `prompt` is given and neither is, typed at a hidden prompt."""
    if value is not None and file is not None:
        raise typer.BadParameter(f"give {option} or {option}-file, not both", param_hint=option)
    if file is not None:
        lines = file.read_text(encoding="utf-8").splitlines()
        value = lines[0] if lines else ""
        if not value:
            raise typer.BadParameter("the file's first line is empty", param_hint=f"{option}-file")
    elif value is None and prompt is not None:
        value = typer.prompt(prompt, hide_input=True, confirmation_prompt=True)
    if value is not None and not value:
        raise typer.BadParameter("must not be empty", param_hint=option)
    return value


@account_app.command("create")
def account_create(
    appid: Annotated[str, typer.Option(help="The account's appid.")],
    accesskey: Annotated[
        str | None,
        typer.Option(
            help="Its accesskey (stored only as a keyed hash). Without it or "
            "--accesskey-file, it is asked for at a hidden prompt."
        ),
    ] = None,
    accesskey_file: SecretFile = None,
    config: ConfigOption = None,
    callback_url: Annotated[str | None, typer.Option(help="Where call records are POSTed.")] = None,
    callback_secret: Annotated[
        str | None, typer.Option(help="Key that signs them (stored encrypted).")
    ] = None,
    callback_secret_file: SecretFile = None,
    prompt_callback_secret: Annotated[
        bool, typer.Option(help="Ask for the callback secret at a hidden prompt.")
    ] = False,
    countries: Annotated[str | None, typer.Option(help="Nation codes allowed, e.g. in,id.")] = None,
    callerids: Annotated[str | None, typer.Option(help="Caller IDs allowed as disnumber.")] = None,
    allowed_ips: Annotated[str | None, typer.Option(help="Client IPs/networks allowed.")] = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Calls at once, at most.")] = 30,
) -> None:
    """Create an account, usable at once by a running server."""
    from ivrcast.numbers import get_nation

    settings = settings_from(config)
    nations = [get_nation(code.lower()).code for code in _split(countries)]
    if callback_url is not None and not callback_url.startswith(("http://", "https://")):
        raise typer.BadParameter("must be an http:// or https:// URL", param_hint="--callback-url")
    key = _secret(accesskey, accesskey_file, option="--accesskey", prompt="accesskey")
    assert key is not None  # prompted for when not given
    secret = _secret(
        callback_secret,
        callback_secret_file,
        option="--callback-secret",
        prompt="callback secret" if prompt_callback_secret else None,
    )
    db = open_database(settings)
    server_key = load_secret_key(settings)
    with db.write() as conn:
        account = account_store.create_account(
            conn,
            appid=appid,
            accesskey_hash=hash_secret(server_key, key),
            now=SystemClock().now(),
            callback_url=callback_url,
            callback_secret=None if secret is None else seal_secret(server_key, secret),
            countries=nations,
            callerids=_split(callerids),
            allowed_ips=_split(allowed_ips),
            max_concurrency=max_concurrency,
        )
    console.print(f"account {account.appid} created")


@account_app.command("list")
def account_list(config: ConfigOption = None) -> None:
    """List accounts."""
    db = open_database(settings_from(config))
    with db.read() as conn:
        rows = account_store.list_accounts(conn)
    table = Table("appid", "state", "countries", "max concurrency", "callback URL", "created")
    for account in rows:
        table.add_row(
            account.appid,
            "disabled" if account.disabled else "active",
            ",".join(account.countries) or "all",
            str(account.max_concurrency),
            account.callback_url or "",
            _when(account.created_at),
        )
    console.print(table)


@account_app.command("disable")
def account_disable(
    appid: Annotated[str, typer.Argument(help="The account to disable.")],
    config: ConfigOption = None,
) -> None:
    """Refuse the account's requests from now on (its data is kept)."""
    db = open_database(settings_from(config))
    with db.write() as conn:
        account_store.update_account(conn, appid, disabled=True)
    console.print(f"account {appid} disabled")


@voice_app.command("upload")
def voice_upload(
    name: Annotated[str, typer.Argument(help="The voice's name (voicefile with voicetype=1).")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Any common audio.")],
    appid: Annotated[str, typer.Option(help="The account that owns the voice.")],
    config: ConfigOption = None,
) -> None:
    """Transcode an audio file and add it to an account's library."""
    from ivrcast.voices.library import add_uploaded_voice
    from ivrcast.voices.pool import TranscodePool

    settings = settings_from(config)
    db = open_database(settings)
    with db.read() as conn:
        account = account_store.find_account(conn, appid)
    if account is None:
        raise typer.BadParameter(f"no account {appid!r}", param_hint="--appid")
    pool = TranscodePool(1)
    try:
        voice = asyncio.run(
            add_uploaded_voice(
                db,
                settings,
                pool,
                account_id=account.id,
                name=name,
                data=file.read_bytes(),
                now=SystemClock().now(),
            )
        )
    finally:
        pool.shutdown()
    console.print(
        f"voice {voice.name} added: {voice.duration_ms / 1000:.1f} s, {voice.source_format}"
    )


def _account_id(db: Database, appid: str | None) -> int | None:
    """The account named by `--appid`; None (every account) when it is not given."""
    if appid is None:
        return None
    with db.read() as conn:
        account = account_store.find_account(conn, appid)
    if account is None:
        raise typer.BadParameter(f"no account {appid!r}", param_hint="--appid")
    return account.id


def _instant(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter("must be an ISO 8601 time", param_hint=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@calls_app.command("export")
def calls_export(
    config: ConfigOption = None,
    appid: Annotated[str | None, typer.Option(help="Only this account's calls.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task's calls.")] = None,
    status: Annotated[str | None, typer.Option(help="Only calls in this state.")] = None,
    since: Annotated[str | None, typer.Option(help="Queued at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Queued before (ISO 8601).")] = None,
    output: Annotated[
        Path | None, typer.Option(help="CSV file (default: standard output).")
    ] = None,
) -> None:
    """Write calls as CSV, streamed page by page (flat memory for any number of rows)."""
    from ivrcast.api.services.calls import call_filter, csv_lines
    from ivrcast.store.calls import iter_calls

    db = open_database(settings_from(config))
    query = {
        name: value
        for name, value in {"task": task, "status": status, "since": since, "until": until}.items()
        if value is not None
    }
    where = call_filter(_account_id(db, appid), query)
    with output.open("w", newline="") if output else contextlib.nullcontext(sys.stdout) as out:
        for chunk in csv_lines(iter_calls(db, where)):
            out.write(chunk)


@callbacks_app.command("replay")
def callbacks_replay(
    config: ConfigOption = None,
    task: Annotated[str | None, typer.Option(help="Re-send this task's records.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Records created at or after (ISO 8601).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Records created before (ISO 8601).")] = None,
    appid: Annotated[str | None, typer.Option(help="Only this account's records.")] = None,
    undelivered_only: Annotated[
        bool, typer.Option(help="Skip records the receiver acknowledged already.")
    ] = False,
) -> None:
    """Queue call records for delivery again (receivers dedupe on `uuid`)."""
    from ivrcast.store.outbox import requeue_deliveries

    if task is None and since is None and until is None:
        raise typer.BadParameter("give --task or --since/--until", param_hint="--task")
    db = open_database(settings_from(config))
    account_id = _account_id(db, appid)
    with db.write() as conn:
        queued = requeue_deliveries(
            conn,
            now=SystemClock().now(),
            account_id=account_id,
            task_id=task,
            since=_instant(since, "--since"),
            until=_instant(until, "--until"),
            include_delivered=not undelivered_only,
        )
    console.print(f"{queued} deliveries queued")


def _endpoint(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/api/yunhu") else url + "/api/yunhu"


@app.command()
def submit(
    numbers: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="CSV of numbers.")],
    nation: Annotated[str, typer.Option(help="Nation code: in, id, ph, mx, co, tha, vn.")],
    voice: Annotated[str, typer.Option(help="Voice name (or URL with --voicetype 2).")],
    appid: AppidOption,
    accesskey: AccesskeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    voicetype: Annotated[int, typer.Option(min=1, max=2)] = 1,
    userkey: Annotated[bool, typer.Option(help="Collect a key press.")] = False,
    todayonly: Annotated[int, typer.Option(min=1, max=2)] = 1,
    waittime: Annotated[int | None, typer.Option()] = None,
    conntime: Annotated[int | None, typer.Option()] = None,
    disnumber: Annotated[str | None, typer.Option()] = None,
    chengshudu: Annotated[str | None, typer.Option()] = None,
    customuuid: Annotated[str | None, typer.Option()] = None,
    chunk_size: Annotated[int, typer.Option(min=1, max=5000)] = 5000,
    request_prefix: Annotated[
        str | None, typer.Option(help="Resume an interrupted run: the prefix it printed.")
    ] = None,
    retries: Annotated[int, typer.Option(min=0)] = 5,
) -> None:
    """Submit any number of numbers, 5000 per request, and print the task ids."""
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ivrcast.submit import (
        Client,
        SubmitError,
        chunks,
        count_numbers,
        new_request_prefix,
        open_numbers,
        read_numbers,
        submit_chunk,
    )

    fields = {
        "nationcode": nation,
        "voicetype": str(voicetype),
        "voicefile": voice,
        "userkey": "1" if userkey else "0",
        "todayonly": str(todayonly),
    }
    optional = {
        "waittime": waittime,
        "conntime": conntime,
        "disnumber": disnumber,
        "chengshudu": chengshudu,
        "customuuid": customuuid,
    }
    fields.update({key: str(value) for key, value in optional.items() if value is not None})
    prefix = request_prefix or new_request_prefix()
    errors.print(f"request prefix {prefix} (pass --request-prefix {prefix} to resume)")
    client = Client(_endpoint(url), appid, accesskey, retries=retries)
    total = count_numbers(numbers)
    task_ids: list[str] = []
    accepted = invalid = duplicates = 0
    columns = (TextColumn("submitting"), BarColumn(), MofNCompleteColumn())
    with (
        httpx.Client(timeout=120, trust_env=False) as http,
        open_numbers(numbers) as lines,
        Progress(*columns, console=errors) as progress,
    ):
        bar = progress.add_task("numbers", total=total)
        for index, batch in enumerate(chunks(read_numbers(lines), chunk_size)):
            try:
                data = submit_chunk(client, http, batch, fields, f"{prefix}-{index}")
            except SubmitError as exc:
                errors.print(f"[red]error:[/red] request {index + 1}: {exc}", highlight=False)
                raise typer.Exit(1) from None
            # A chunk of invalid numbers only makes no task (the server's 1021).
            if "taskid" in data:
                task_ids.append(data["taskid"])
            accepted += data["accepted"]
            duplicates += data.get("duplicates", 0)
            invalid += data["invalidcount"]
            progress.advance(bar, len(batch))
    errors.print(
        f"{len(task_ids)} tasks: {accepted} numbers queued, {duplicates} duplicates, "
        f"{invalid} invalid"
    )
    for task_id in task_ids:
        console.print(task_id, highlight=False)


@tasks_app.command("watch")
def tasks_watch(
    taskid: Annotated[list[str], typer.Argument(help="One or more task ids.")],
    appid: AppidOption,
    accesskey: AccesskeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls.")] = 2.0,
) -> None:
    """Show live progress until every task has ended."""
    import time

    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ivrcast.submit import Client, SubmitError

    client = Client(_endpoint(url), appid, accesskey)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with (
        httpx.Client(timeout=30, trust_env=False) as http,
        Progress(*columns, console=errors) as progress,
    ):
        bars = {t: progress.add_task(t[:12], total=None, detail="") for t in taskid}
        running = set(taskid)
        while running:
            for task_id in sorted(running):
                try:
                    body = client.call(http, "App.Sip_Call.TaskStatus", {"taskid": task_id})
                except SubmitError as exc:
                    errors.print(f"[red]error:[/red] {exc}", highlight=False)
                    raise typer.Exit(1) from None
                data = body.get("data") or {}
                if body.get("code") != 200 or data.get("status") == 1:
                    message = (data.get("errors") or {}).get("codemsg") or body.get("msg")
                    errors.print(f"[red]error:[/red] {task_id}: {message}", highlight=False)
                    raise typer.Exit(1)
                counts = {k: v for k, v in data["counts"].items() if v}
                detail = " ".join(f"{state} {n}" for state, n in sorted(counts.items()))
                progress.update(
                    bars[task_id], total=data["total"], completed=data["finished"], detail=detail
                )
                if data["status"] != "active" and data["finished"] == data["total"]:
                    running.discard(task_id)
            if running:
                time.sleep(interval)
    for task_id in taskid:
        console.print(f"{task_id} ended", highlight=False)


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def main() -> None:
    try:
        app()
    except IvrcastError as exc:
        errors.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise SystemExit(2) from None
