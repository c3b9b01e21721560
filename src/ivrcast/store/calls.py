"""Reading calls: filtered lists with keyset pagination, streaming export, one call's story.

Pages are keyset-based (`id < cursor`, newest first), so a page costs the same however
deep the reader has gone, and `iter_calls` can stream a million rows with flat memory:
each page is its own short read transaction, and nothing is held between pages but the
last id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, or_, select

from ivrcast.numbers import submitted_form
from ivrcast.store.engine import Database
from ivrcast.store.tables import call_records, calls, outbox, tasks

EXPORT_COLUMNS = (
    "uuid",
    "task_id",
    "nationcode",
    "number",
    "submitted_number",
    "status",
    "round",
    "final",
    "trunk",
    "disnumber",
    "queued_at",
    "invited_at",
    "ringing_at",
    "answered_at",
    "ended_at",
    "sip_code",
    "sip_reason",
    "hangup_cause",
    "hangup_direction",
    "keys",
    "codec",
    "customuuid",
    "chengshudu",
)


@dataclass(frozen=True)
class CallFilter:
    """Which calls: `account_id` None is the operator's view of every account."""

    account_id: int | None
    task_id: str | None = None
    status: str | None = None
    number: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.account_id is not None:
            found.append(calls.c.account_id == self.account_id)
        if self.task_id is not None:
            found.append(calls.c.task_id == self.task_id)
        if self.status is not None:
            found.append(calls.c.status == self.status)
        if self.number is not None:
            found.append(number_matches(self.number))
        if self.since is not None:
            found.append(calls.c.queued_at >= self.since)
        if self.until is not None:
            found.append(calls.c.queued_at < self.until)
        return found


def number_matches(number: str) -> ColumnElement[bool]:
    """Calls to `number`, written either way: in E.164 (with or without `+`) or as the
    customer submitted it (`081234567890`), separators ignored in both."""
    written = submitted_form(number)
    return or_(
        calls.c.number == "+" + written.lstrip("+"),
        calls.c.submitted_number == written,
    )


def _calls_query(where: CallFilter) -> Select[Any]:
    return (
        select(*calls.c, tasks.c.customuuid, tasks.c.chengshudu)
        .join(tasks, tasks.c.id == calls.c.task_id)
        .where(*where.conditions())
        .order_by(calls.c.id.desc())
    )


def list_calls(
    conn: Connection, where: CallFilter, *, before_id: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """One page, newest first; pass the last row's `id` as `before_id` for the next page."""
    query = _calls_query(where).limit(limit)
    if before_id is not None:
        query = query.where(calls.c.id < before_id)
    return [dict(row._mapping) for row in conn.execute(query)]


def iter_calls(
    db: Database, where: CallFilter, *, page_size: int = 2000
) -> Iterator[dict[str, Any]]:
    """Every matching call, newest first, read page by page."""
    before_id: int | None = None
    while True:
        with db.read() as conn:
            page = list_calls(conn, where, before_id=before_id, limit=page_size)
        yield from page
        if len(page) < page_size:
            return
        before_id = page[-1]["id"]


def call_story(conn: Connection, account_id: int | None, uuid: str) -> dict[str, Any] | None:
    """One call with its record and the delivery of that record, for a timeline."""
    query = _calls_query(CallFilter(account_id)).where(calls.c.uuid == uuid)
    row = conn.execute(query).one_or_none()
    if row is None:
        return None
    story: dict[str, Any] = {"call": dict(row._mapping), "record": None, "delivery": None}
    record = conn.execute(
        select(call_records).where(call_records.c.call_id == row.id)
    ).one_or_none()
    if record is not None:
        story["record"] = dict(record._mapping)
        delivery = conn.execute(select(outbox).where(outbox.c.record_id == record.id)).one_or_none()
        story["delivery"] = dict(delivery._mapping) if delivery else None
    return story


def has_recording(conn: Connection, account_id: int, uuid: str) -> bool:
    """Whether the account's call `uuid` was recorded: another account's never is."""
    found = conn.execute(
        select(calls.c.id).where(
            calls.c.uuid == uuid, calls.c.account_id == account_id, calls.c.recorded.is_(True)
        )
    ).first()
    return found is not None
