"""The callback delivery log as the console shows it: filtered, paged, summed up.

`account_id` None is the operator, who sees every account's deliveries.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select

from ivrcast.store.tables import call_records, calls, outbox

DELIVERY_FILTERS = ("all", "failing", "pending", "delivered", "dead")


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
