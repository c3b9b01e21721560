"""Accounts and finished calls for the callback tests, made through the store's own API.

Importable from every test folder: `tests/` is on sys.path once its conftest is loaded.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ivrcast.callbacks.record import build_call_record
from ivrcast.store.accounts import Account, create_account, update_account
from ivrcast.store.engine import Database
from ivrcast.store.tables import calls, outbox
from ivrcast.store.tasks import NewTask, create_task
from ivrcast.store.transitions import CallEnd, finish_calls_where
from ivrcast.store.voices import insert_voice

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
build_record = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))
_numbers = count(1)


def make_account(
    db: Database,
    appid: str,
    *,
    callback_url: str | None,
    secret: str | None = "s3cret",
    now: datetime = T0,
) -> Account:
    with db.write() as conn:
        return create_account(
            conn,
            appid=appid,
            accesskey_hash="0" * 64,
            callback_url=callback_url,
            callback_secret=secret,
            now=now,
        )


def set_callback(db: Database, appid: str, **values: str | None) -> None:
    with db.write() as conn:
        update_account(conn, appid, **values)


def finish_task(db: Database, account: Account, n: int, *, now: datetime = T0) -> str:
    """A task of `n` numbers whose calls all completed at `now`; returns the task id."""
    numbers = [f"+62812{next(_numbers):07d}" for _ in range(n)]
    with db.write() as conn:
        voice = insert_voice(
            conn,
            account_id=account.id,
            name=f"v{numbers[0][1:]}",
            source_url=None,
            source_format="wav",
            source_bytes=1,
            duration_ms=20,
            pcmu=b"\xff" * 160,
            pcma=b"\xd5" * 160,
            now=now,
        )
        task_id = create_task(
            conn,
            NewTask(
                account_id=account.id,
                nationcode="id",
                voice_id=voice.id,
                numbers=numbers,
                userkey=True,
                todayonly=2,
                waittime=30,
                conntime=60,
                disnumber=None,
                chengshudu="cs",
                customuuid="cu",
                duplicates=0,
                invalid=0,
                local_day=date(2025, 3, 1),
            ),
            now=now,
        )
        finish_calls_where(
            conn,
            calls.c.task_id == task_id,
            CallEnd(
                status="completed",
                invited_at=now - timedelta(seconds=20),
                answered_at=now - timedelta(seconds=12),
                sip_code=200,
                sip_reason="OK",
                hangup_cause=10001,
                hangup_direction=10041,
                disnumber="622150001000",
                trunk="id-main",
                keys="1",
            ),
            from_states=("queued",),
            build_record=build_record,
            now=now,
        )
    return task_id


def call_uuids(db: Database, task_id: str) -> set[str]:
    with db.read() as conn:
        return set(conn.scalars(select(calls.c.uuid).where(calls.c.task_id == task_id)))


def outbox_rows(db: Database) -> list[dict[str, object]]:
    with db.read() as conn:
        return [dict(row._mapping) for row in conn.execute(select(outbox).order_by(outbox.c.id))]
