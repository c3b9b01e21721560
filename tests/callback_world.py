"""Accounts and finished calls for the callback tests, made through the store's own API.

Importable from every test folder: `tests/` is on sys.path once its conftest is loaded.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from factories import add_account, add_task, add_voice
from ivrcast.callbacks.record import build_call_record
from ivrcast.store.accounts import Account, update_account
from ivrcast.store.engine import Database
from ivrcast.store.tables import calls, outbox
from ivrcast.store.transitions import CallEnd, finish_calls_where

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
        return add_account(conn, appid, now=now, callback_url=callback_url, callback_secret=secret)


def set_callback(db: Database, appid: str, **values: str | None) -> None:
    with db.write() as conn:
        update_account(conn, appid, **values)


def finish_task(db: Database, account: Account, n: int, *, now: datetime = T0) -> str:
    """A task of `n` numbers whose calls all completed at `now`; returns the task id."""
    numbers = [f"+62812{next(_numbers):07d}" for _ in range(n)]
    with db.write() as conn:
        voice_id = add_voice(conn, account.id, now=now, name=f"v{numbers[0][1:]}")
        task_id = add_task(
            conn,
            account.id,
            voice_id,
            numbers,
            now=now,
            local_day=date(2025, 3, 1),
            userkey=True,
            chengshudu="cs",
            customuuid="cu",
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


def outbox_rows(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(row._mapping) for row in conn.execute(select(outbox).order_by(outbox.c.id))]
