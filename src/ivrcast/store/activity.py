"""The console's live figures: ended calls per minute, and calls in progress or waiting.

Every function takes `account_id`: an account sees only its own rows; None is the
operator, who sees every account's. Time-range reads go through `call_records`, whose
`(account_id, created_at)` index makes "records of the last minutes" a range scan; the
operator's reads add `account_id IN (all accounts)` so that the same index serves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, cast, extract, func, select

from ivrcast.store.tables import ACTIVE_STATES, accounts, call_records, calls


@dataclass(frozen=True)
class Bucket:
    """Calls that ended in one minute, of one nation, in one final state."""

    minute: int
    """Minutes since the epoch (UTC)."""
    nationcode: str
    status: str
    calls: int
    answered: int
    billsec: float
    """Answered seconds, summed."""


def _records_of(account_id: int | None) -> ColumnElement[bool]:
    if account_id is not None:
        return call_records.c.account_id == account_id
    return call_records.c.account_id.in_(select(accounts.c.id))


def activity(
    conn: Connection, account_id: int | None, *, since: datetime, until: datetime | None = None
) -> list[Bucket]:
    """Ended calls per minute, nation and state, from their records (created as they end)."""
    minute = _epoch_minute(conn, call_records.c.created_at)
    billsec = _seconds_between(conn, calls.c.answered_at, calls.c.ended_at)
    conditions = [_records_of(account_id), call_records.c.created_at >= since]
    if until is not None:
        conditions.append(call_records.c.created_at < until)
    rows = conn.execute(
        select(
            minute,
            calls.c.nationcode,
            calls.c.status,
            func.count(),
            func.count(calls.c.answered_at),
            func.coalesce(func.sum(billsec), 0),
        )
        .select_from(call_records)
        .join(calls, calls.c.id == call_records.c.call_id)
        .where(*conditions)
        .group_by(minute, calls.c.nationcode, calls.c.status)
    )
    return [
        Bucket(int(m), nation, status, count, answered, float(seconds))
        for m, nation, status, count, answered, seconds in rows
    ]


def live_counts(conn: Connection, account_id: int | None) -> dict[str, int]:
    """Calls in progress and calls still waiting, right now."""
    query = select(calls.c.status, func.count()).where(
        calls.c.status.in_(("queued", *ACTIVE_STATES))
    )
    if account_id is not None:
        query = query.where(calls.c.account_id == account_id)
    counts: dict[str, int] = {
        status: count for status, count in conn.execute(query.group_by(calls.c.status))
    }
    return {
        "active": sum(counts.get(state, 0) for state in ACTIVE_STATES),
        "queued": counts.get("queued", 0),
    }


def _epoch_minute(conn: Connection, column: Any) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite":
        # Timestamps are stored as naive UTC text; strftime('%s') reads them as UTC.
        return cast(func.strftime("%s", column), Integer) // 60
    return cast(func.floor(extract("epoch", column) / 60), Integer)


def _seconds_between(conn: Connection, start: Any, end: Any) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return extract("epoch", end - start)
