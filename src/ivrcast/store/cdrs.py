"""Reading call records back: the vendor's pull interfaces (`GetBill`, `/api/cdrs`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ivrcast.store.calls import number_matches
from ivrcast.store.tables import call_records, calls

SYNC_UNFETCHED = 1
SYNC_FETCHED = 2
SYNC_ALL = 3


def pull_records(
    conn: Connection, account_id: int, *, syncflag: int, limit: int, now: datetime
) -> list[dict[str, Any]]:
    """Records by `syncflag`: 1 those never pulled (and marks them pulled), 2 those pulled
    before, 3 all; oldest first, so repeated pulls with flag 1 walk through everything."""
    query = (
        select(call_records.c.id, call_records.c.call_id, call_records.c.payload)
        .where(call_records.c.account_id == account_id)
        .order_by(call_records.c.id)
        .limit(limit)
    )
    if syncflag == SYNC_UNFETCHED:
        query = query.where(call_records.c.fetched_at.is_(None))
    elif syncflag == SYNC_FETCHED:
        query = query.where(call_records.c.fetched_at.is_not(None))
    rows = conn.execute(query).all()
    if syncflag == SYNC_UNFETCHED and rows:
        conn.execute(
            call_records.update()
            .where(call_records.c.id.in_([row.id for row in rows]))
            .values(fetched_at=now)
        )
    return [_payload(row.payload, row.call_id) for row in rows]


def _payload(payload: str, call_id: int) -> dict[str, Any]:
    """The record as pushed, with its `id`: the call's, which records made before the
    payload carried it (as `""`) get here, so every interface shows the same id."""
    record: dict[str, Any] = json.loads(payload)
    if record.get("id") in (None, ""):
        record["id"] = call_id
    return record


@dataclass(frozen=True)
class RecordFilter:
    account_id: int
    start: datetime
    end: datetime
    disnumber: str | None = None
    callnumber: str | None = None


def page_records(
    conn: Connection, where: RecordFilter, *, page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of records that ended within [start, end], newest first, and the total."""
    conditions = [
        call_records.c.account_id == where.account_id,
        call_records.c.created_at >= where.start,
        call_records.c.created_at <= where.end,
    ]
    if where.disnumber is not None:
        conditions.append(calls.c.disnumber == where.disnumber)
    if where.callnumber is not None:
        conditions.append(number_matches(where.callnumber))
    joined = call_records.join(calls, calls.c.id == call_records.c.call_id)
    total = conn.execute(select(func.count()).select_from(joined).where(*conditions)).scalar_one()
    rows = conn.execute(
        select(call_records.c.call_id, call_records.c.payload)
        .select_from(joined)
        .where(*conditions)
        .order_by(call_records.c.created_at.desc(), call_records.c.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return [_payload(row.payload, row.call_id) for row in rows], total
