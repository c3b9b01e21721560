"""The operator's commands on the database: accounts, voices, call exports and callback
replays. They work on the configured database directly, with or without a server."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from ivrcast.account_settings import account_changes
from ivrcast.cli.common import ConfigOption, console, open_database, settings_from, when
from ivrcast.clock import SystemClock
from ivrcast.config import Settings
from ivrcast.credentials import hash_secret, load_secret_key, seal_secret
from ivrcast.errors import ValidationError
from ivrcast.store import accounts as account_store
from ivrcast.store.engine import Database

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
    default_retries: Annotated[
        int, typer.Option(help="PlayVoice `retries` (0-5) when a request sends none.")
    ] = 0,
    default_record: Annotated[
        bool,
        typer.Option(
            "--default-record/--no-default-record",
            help="Record answered calls when a PlayVoice request sends no `record`.",
        ),
    ] = False,
) -> None:
    """Create an account, usable at once by a running server."""
    settings = settings_from(config)
    values = _checked_settings(
        settings,
        countries=countries,
        callerids=callerids,
        allowed_ips=allowed_ips,
        max_concurrency=str(max_concurrency),
        callback_url=callback_url,
        default_retries=str(default_retries),
        default_record=str(int(default_record)),
    )
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
            callback_secret=None if secret is None else seal_secret(server_key, secret),
            **values,
        )
    console.print(f"account {account.appid} created")


def _checked_settings(settings: Settings, **given: str | None) -> dict[str, Any]:
    """The store's values for the options given, checked as the console checks them; a
    bad one is refused naming its option."""
    try:
        return account_changes(
            {name: text for name, text in given.items() if text is not None},
            ZoneInfo(settings.callbacks.timezone),
        )
    except ValidationError as exc:
        option = "--" + exc.param.replace("_", "-")
        message = exc.message.removeprefix(f"{exc.param}: ")
        raise typer.BadParameter(message, param_hint=option) from None


def account_update(
    appid: Annotated[str, typer.Option(help="The account to change.")],
    config: ConfigOption = None,
    countries: Annotated[
        str | None, typer.Option(help='Nation codes allowed, e.g. in,id ("": all).')
    ] = None,
    callerids: Annotated[
        str | None, typer.Option(help='Caller IDs allowed as disnumber ("": the pools only).')
    ] = None,
    allowed_ips: Annotated[
        str | None, typer.Option(help='Client IPs/networks allowed ("": any).')
    ] = None,
    max_concurrency: Annotated[
        int | None, typer.Option(min=1, help="Calls at once, at most.")
    ] = None,
    callback_url: Annotated[
        str | None, typer.Option(help='Where call records are POSTed ("": none).')
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            help="YYYY-MM-DD: its requests answer 602 from the start of that day "
            "([callbacks] timezone); never: it does not expire."
        ),
    ] = None,
    disable: Annotated[
        bool | None,
        typer.Option("--disable/--enable", help="Refuse its requests (601), or accept them."),
    ] = None,
    default_retries: Annotated[
        int | None, typer.Option(help="PlayVoice `retries` (0-5) when a request sends none.")
    ] = None,
    default_record: Annotated[
        bool | None,
        typer.Option(
            "--default-record/--no-default-record",
            help="Record answered calls when a PlayVoice request sends no `record`, or not.",
        ),
    ] = None,
) -> None:
    """Change an account's settings; the options not given are left as they are."""
    settings = settings_from(config)
    values = _checked_settings(
        settings,
        countries=countries,
        callerids=callerids,
        allowed_ips=allowed_ips,
        max_concurrency=None if max_concurrency is None else str(max_concurrency),
        callback_url=callback_url,
        expires=expires,
        default_retries=None if default_retries is None else str(default_retries),
        default_record=None if default_record is None else str(int(default_record)),
    )
    if disable is not None:
        values["disabled"] = disable
    if not values:
        raise typer.BadParameter("give at least one setting to change", param_hint="--appid")
    db = open_database(settings)
    try:
        with db.write() as conn:
            account = account_store.update_account(conn, appid, **values)
    except account_store.AccountNotFound:
        raise typer.BadParameter(f"no account {appid!r}", param_hint="--appid") from None
    state = "disabled" if account.disabled else "enabled"
    expiry = when(account.expires_at) if account.expires_at else "never"
    recording = "yes" if account.default_record else "no"
    console.print(f"account {account.appid} updated: {state}, expires {expiry}")
    console.print(f"PlayVoice defaults: retries {account.default_retries}, record {recording}")


def account_list(config: ConfigOption = None) -> None:
    """List accounts."""
    db = open_database(settings_from(config))
    with db.read() as conn:
        rows = account_store.list_accounts(conn)
    now = SystemClock().now()
    table = Table(
        "appid",
        "state",
        "countries",
        "max concurrency",
        "default retries",
        "default record",
        "callback URL",
        "expires",
        "created",
    )
    for account in rows:
        expired = account.expires_at is not None and account.expires_at <= now
        table.add_row(
            account.appid,
            "disabled" if account.disabled else "expired" if expired else "active",
            ",".join(account.countries) or "all",
            str(account.max_concurrency),
            str(account.default_retries),
            "yes" if account.default_record else "no",
            account.callback_url or "",
            when(account.expires_at) if account.expires_at else "never",
            when(account.created_at),
        )
    console.print(table)


def account_disable(
    appid: Annotated[str, typer.Argument(help="The account to disable.")],
    config: ConfigOption = None,
) -> None:
    """Refuse the account's requests from now on (its data is kept)."""
    db = open_database(settings_from(config))
    with db.write() as conn:
        account_store.update_account(conn, appid, disabled=True)
    console.print(f"account {appid} disabled")


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
