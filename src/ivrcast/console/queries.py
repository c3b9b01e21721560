"""The reads (and the one delete) that only the console needs, as SQLAlchemy Core.

Every function takes `account_id`: an account sees only its own rows; None is the
operator, who sees every account's. Time-range reads go through `call_records`, whose
`(account_id, created_at)` index makes "records of the last minutes" a range scan; the
operator's reads add `account_id IN (all accounts)` so that the same index serves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    and_,
    case,
    cast,
    delete,
    extract,
    func,
    or_,
    select,
)

from ivrcast.store.tables import (
    ACTIVE_STATES,
    accounts,
    call_records,
    calls,
    outbox,
    tasks,
    tokens,
    voices,
)

DELIVERY_FILTERS = ("all", "failing", "pending", "delivered", "dead")


@dataclass(frozen=True)
class VoiceRow:
    id: int
    account_id: int
    name: str
    source_format: str
    source_bytes: int
    duration_ms: int
    created_at: datetime


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


def appids(conn: Connection) -> dict[int, str]:
    return {row.id: row.appid for row in conn.execute(select(accounts.c.id, accounts.c.appid))}


def revoke_tokens(conn: Connection, account_id: int) -> int:
    """Every API token of the account -> gone (its accesskey was rotated)."""
    return conn.execute(delete(tokens).where(tokens.c.account_id == account_id)).rowcount


def task_counts(conn: Connection, task_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Calls by state for each task of a page, in one query."""
    found: dict[str, dict[str, int]] = {task_id: {} for task_id in task_ids}
    if not task_ids:
        return found
    rows = conn.execute(
        select(calls.c.task_id, calls.c.status, func.count())
        .where(calls.c.task_id.in_(list(task_ids)))
        .group_by(calls.c.task_id, calls.c.status)
    )
    for task_id, status, count in rows:
        found[task_id][status] = count
    return found


def task_voice_names(conn: Connection, task_ids: Sequence[str]) -> dict[str, str]:
    """The voice each task plays: its name, or the URL it was fetched from."""
    if not task_ids:
        return {}
    rows = conn.execute(
        select(tasks.c.id, func.coalesce(voices.c.name, voices.c.source_url))
        .join(voices, voices.c.id == tasks.c.voice_id)
        .where(tasks.c.id.in_(list(task_ids)))
    )
    return {task_id: name for task_id, name in rows}


def named_voices(conn: Connection, account_id: int | None) -> list[VoiceRow]:
    """The library (named voices; cached online voices are not part of it)."""
    query = select(*_VOICE_COLUMNS).where(voices.c.name.is_not(None))
    if account_id is not None:
        query = query.where(voices.c.account_id == account_id)
    rows = conn.execute(query.order_by(voices.c.account_id, voices.c.name))
    return [VoiceRow(*row) for row in rows]


def find_voice(conn: Connection, account_id: int | None, voice_id: int) -> VoiceRow | None:
    query = select(*_VOICE_COLUMNS).where(voices.c.id == voice_id, voices.c.name.is_not(None))
    if account_id is not None:
        query = query.where(voices.c.account_id == account_id)
    row = conn.execute(query).one_or_none()
    return None if row is None else VoiceRow(*row)


def voice_task_count(conn: Connection, voice_id: int) -> int:
    return conn.execute(select(func.count()).where(tasks.c.voice_id == voice_id)).scalar_one()


def delete_voice(conn: Connection, account_id: int, voice_id: int) -> bool:
    """Remove a voice no task refers to; the foreign key refuses one that is in use."""
    result = conn.execute(
        delete(voices).where(voices.c.id == voice_id, voices.c.account_id == account_id)
    )
    return result.rowcount == 1


_VOICE_COLUMNS = (
    voices.c.id,
    voices.c.account_id,
    voices.c.name,
    voices.c.source_format,
    voices.c.source_bytes,
    voices.c.duration_ms,
    voices.c.created_at,
)


def deliveries(
    conn: Connection,
    account_id: int | None,
    *,
    which: str = "all",
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The delivery log, newest first, with each record's call; keyset pages by id."""
    query = (
        select(
            outbox.c.id,
            outbox.c.account_id,
            outbox.c.url,
            outbox.c.status,
            outbox.c.attempts,
            outbox.c.next_attempt_at,
            outbox.c.last_error,
            outbox.c.last_status,
            outbox.c.created_at,
            outbox.c.delivered_at,
            call_records.c.uuid,
            call_records.c.task_id,
            calls.c.number,
            calls.c.status.label("call_status"),
        )
        .join(call_records, call_records.c.id == outbox.c.record_id)
        .join(calls, calls.c.id == call_records.c.call_id)
        .order_by(outbox.c.id.desc())
        .limit(limit)
    )
    if account_id is not None:
        query = query.where(outbox.c.account_id == account_id)
    if which == "failing":
        query = query.where(_failing())
    elif which in ("pending", "delivered", "dead"):
        query = query.where(outbox.c.status == which)
    if before_id is not None:
        query = query.where(outbox.c.id < before_id)
    return [dict(row._mapping) for row in conn.execute(query)]


def _failing() -> ColumnElement[bool]:
    """Given up on, or still retrying after at least one failed attempt."""
    return or_(outbox.c.status == "dead", and_(outbox.c.status == "pending", outbox.c.attempts > 0))


def delivery_summary(conn: Connection, account_id: int | None) -> dict[str, int]:
    query = select(
        func.count(),
        func.sum(case((outbox.c.status == "pending", 1), else_=0)),
        func.sum(case((outbox.c.status == "delivered", 1), else_=0)),
        func.sum(case((outbox.c.status == "dead", 1), else_=0)),
        func.sum(case((_failing(), 1), else_=0)),
    )
    if account_id is not None:
        query = query.where(outbox.c.account_id == account_id)
    total, pending, delivered, dead, failing = conn.execute(query).one()
    return {
        "all": total,
        "pending": pending or 0,
        "delivered": delivered or 0,
        "dead": dead or 0,
        "failing": failing or 0,
    }


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
