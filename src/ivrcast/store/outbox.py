"""The callback outbox: one row per record to push, and the transitions of its delivery.

    pending --2xx--> delivered
    pending --failure--> pending (next_attempt_at moved by the backoff)
    pending --failure after the maximum age--> dead
    delivered | dead | pending --requeue (replay)--> pending, a fresh delivery window

A sender claims due rows and, in the same transaction, moves their `next_attempt_at`
forward by a lease, so another sender (in this process or another) skips them until the lease
ends. A sender that dies mid-delivery therefore leaves nothing behind: its rows become due
again when their lease runs out. The claim has the shape of every claim (`store.claims`):
on PostgreSQL concurrent claims lock disjoint rows with `FOR UPDATE SKIP LOCKED` without
waiting; on SQLite the `BEGIN IMMEDIATE` of `Database.write()` serialises them.

`created_at` is the start of the current delivery window: set when the record is written,
and again when a replay requeues the row. The maximum age counts from it.

The transitions are guarded by `status = 'pending'` and return whether they applied: a
row whose lease ran out can be delivered by two senders at once, and the second to finish
must not undo the first (receivers dedupe on `uuid`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    and_,
    bindparam,
    exists,
    func,
    literal,
    select,
)

from ivrcast.store.claims import claim_rows
from ivrcast.store.outbox_wakeup import outbox_due
from ivrcast.store.tables import OUTBOX_STATES, Timestamp, accounts, call_records, outbox

MAX_ERROR_CHARS = 500
"""`last_error` is for the operator's eye, not an archive of the receiver's pages."""


@dataclass(frozen=True)
class Delivery:
    """A claimed delivery, with what is needed to send it."""

    id: int
    record_id: int
    account_id: int
    uuid: str
    url: str
    """The account's callback URL at claim time (the recorded one if it has none now)."""
    payload: str
    """The record's JSON text, sent byte for byte."""
    secret: str | None
    """The account's callback secret at claim time; None: send unsigned."""
    attempts: int
    """Attempts finished before this one."""
    created_at: datetime
    """Start of the delivery window: the maximum age counts from here."""


@dataclass(frozen=True)
class DeliveryCounts:
    pending: int
    due: int
    """Pending and due now (neither leased nor waiting out a backoff)."""
    delivered: int
    dead: int
    oldest_due_at: datetime | None
    """The earliest `next_attempt_at` among the due rows: how far the senders lag."""


def _current_url() -> ColumnElement[Any]:
    """The account's callback URL now, falling back to the one the row holds."""
    account_url = (
        select(accounts.c.callback_url)
        .where(accounts.c.id == outbox.c.account_id)
        .scalar_subquery()
    )
    return func.coalesce(func.nullif(account_url, ""), outbox.c.url)


def claim_due_deliveries(
    conn: Connection,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
    per_account: int | None = None,
    account_limits: Mapping[int, int] | None = None,
) -> list[Delivery]:
    """pending and due -> pending and leased until `lease_until`: up to `limit` rows.

    Without `per_account`, the longest-waiting rows are taken whoever they belong to.
    With it, the accounts with due rows are served longest-waiting first, each with at
    most `per_account` rows (or its entry in `account_limits`; 0 skips the account), so
    one account's backlog cannot fill a batch with rows its receiver cannot take yet.
    """
    due = and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
    claimed: list[Row[Any]]
    if per_account is None:
        claimed = _lease(conn, due, limit, lease_until)
    else:
        limits = account_limits or {}
        full = [account_id for account_id, room in limits.items() if room <= 0]
        claimed = []
        for account_id in conn.scalars(_accounts_due(now, limit, full)).all():
            room = min(limits.get(account_id, per_account), limit - len(claimed))
            if room <= 0:
                break
            claimed += _lease(conn, and_(due, outbox.c.account_id == account_id), room, lease_until)
    return [
        Delivery(
            id=row.id,
            record_id=row.record_id,
            account_id=row.account_id,
            uuid=row.uuid,
            url=row.url,
            payload=row.payload,
            secret=row.secret or None,
            attempts=row.attempts,
            created_at=row.created_at,
        )
        for row in claimed
    ]


def _accounts_due(now: datetime, limit: int, skipped: Sequence[int]) -> Select[int]:
    """The first `limit` accounts with due rows, longest-waiting first, leaving out
    `skipped`. A `GROUP BY` over the due rows would go through all of them (the whole
    backlog, on every claim); instead the accounts with pending rows are walked one index
    seek at a time (a recursive query: each step the next account id above the last), and
    each account's oldest pending row is one more seek. The cost grows with the number of
    accounts that have pending rows, not with the rows."""
    pending = outbox.c.status == "pending"
    later = outbox.alias("later")
    first = select(func.min(outbox.c.account_id).label("account_id")).where(pending)
    walk = first.cte("pending_accounts", recursive=True)
    following = (
        select(func.min(later.c.account_id))
        .where(later.c.status == "pending", later.c.account_id > walk.c.account_id)
        .scalar_subquery()
    )
    walk = walk.union_all(select(following).where(walk.c.account_id.is_not(None)))
    oldest = (
        select(func.min(outbox.c.next_attempt_at))
        .where(pending, outbox.c.account_id == walk.c.account_id)
        .scalar_subquery()
    )
    accounts_pending = (
        select(walk.c.account_id, oldest.label("oldest"))
        .where(walk.c.account_id.is_not(None))
        .subquery()
    )
    query = (
        select(accounts_pending.c.account_id)
        .where(accounts_pending.c.oldest <= now)
        .order_by(accounts_pending.c.oldest, accounts_pending.c.account_id)
        .limit(limit)
    )
    if skipped:
        query = query.where(accounts_pending.c.account_id.not_in(list(skipped)))
    return query


def _lease(
    conn: Connection, where: ColumnElement[bool], limit: int, lease_until: datetime
) -> list[Row[Any]]:
    """The first `limit` rows matching `where`, oldest due first, leased (see
    `store.claims` for why this is two statements, and why the UPDATE repeats no part
    of `where`: on SQLite it would walk the account's whole pending range)."""
    chosen = (
        select(outbox.c.id)
        .where(where)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )
    update = (
        outbox.update()
        .values(next_attempt_at=lease_until, url=_current_url())
        .returning(
            outbox.c.id,
            outbox.c.record_id,
            outbox.c.account_id,
            outbox.c.url,
            outbox.c.attempts,
            outbox.c.created_at,
            # What the sender needs, in the same round trip.
            _of_record(call_records.c.uuid).label("uuid"),
            _of_record(call_records.c.payload).label("payload"),
            select(accounts.c.callback_secret)
            .where(accounts.c.id == outbox.c.account_id)
            .scalar_subquery()
            .label("secret"),
        )
    )
    return claim_rows(conn, chosen=chosen, update=update, id_column=outbox.c.id)


def _of_record(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return select(column).where(call_records.c.id == outbox.c.record_id).scalar_subquery()


def release_deliveries(conn: Connection, ids: Sequence[int], *, next_attempt_at: datetime) -> int:
    """Claimed but not attempted -> pending, due at `next_attempt_at`; no attempt counted."""
    if not ids:
        return 0
    result = conn.execute(
        outbox.update()
        .where(outbox.c.id.in_(list(ids)), outbox.c.status == "pending")
        .values(next_attempt_at=next_attempt_at)
    )
    return result.rowcount


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, and what happens to its delivery next."""

    delivery_id: int
    url: str
    """Where the attempt went."""
    status_code: int | None
    """The receiver's HTTP status; None when no answer came."""
    finished_at: datetime
    error: str = ""
    """Why the attempt failed; empty when it was acknowledged."""
    retry_at: datetime | None = None
    """For a failure: when to try again; None makes the delivery dead."""

    @property
    def delivered(self) -> bool:
        return not self.error


_BY_ID = and_(outbox.c.id == bindparam("b_id"), outbox.c.status == "pending")


def record_outcomes(conn: Connection, outcomes: Sequence[Outcome]) -> int:
    """pending -> delivered (acknowledged), pending (retry at `retry_at`) or dead (failed
    past the maximum age), each counting one attempt; one statement per kind for the
    whole batch. Returns how many rows changed (rows no longer pending are left alone)."""
    delivered = [
        {"b_id": o.delivery_id, "b_url": o.url, "b_status": o.status_code, "b_at": o.finished_at}
        for o in outcomes
        if o.delivered
    ]
    failed = [
        {
            "b_id": o.delivery_id,
            "b_url": o.url,
            "b_status": o.status_code,
            "b_error": o.error[:MAX_ERROR_CHARS],
            "b_retry": o.retry_at,
        }
        for o in outcomes
        if not o.delivered
    ]
    retries = [row for row in failed if row["b_retry"] is not None]
    dead = [
        {k: v for k, v in row.items() if k != "b_retry"} for row in failed if row["b_retry"] is None
    ]
    common = {
        "attempts": outbox.c.attempts + 1,
        "url": bindparam("b_url"),
        "last_status": bindparam("b_status"),
    }
    changed = 0
    if delivered:
        changed += conn.execute(
            outbox.update()
            .where(_BY_ID)
            .values(
                **common,
                status="delivered",
                delivered_at=bindparam("b_at", type_=Timestamp()),
                last_error=None,
            ),
            delivered,
        ).rowcount
    if retries:
        changed += conn.execute(
            outbox.update()
            .where(_BY_ID)
            .values(
                **common,
                next_attempt_at=bindparam("b_retry", type_=Timestamp()),
                last_error=bindparam("b_error"),
            ),
            retries,
        ).rowcount
    if dead:
        changed += conn.execute(
            outbox.update()
            .where(_BY_ID)
            .values(**common, status="dead", last_error=bindparam("b_error")),
            dead,
        ).rowcount
    return changed


def requeue_deliveries(
    conn: Connection,
    *,
    now: datetime,
    account_id: int | None = None,
    task_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    record_ids: Sequence[int] | None = None,
    uuids: Sequence[str] | None = None,
    include_delivered: bool = True,
) -> int:
    """Replay: the matching records' deliveries -> pending, due now, with a fresh window.

    Records are chosen by every filter given (all of them must hold): account, task,
    record time in [`since`, `until`), record ids, call uuids; at least one of task,
    times, ids or uuids is required, so a replay of everything is never an accident.
    A record without a delivery row (its account had no callback URL then) gets one when
    its account has a URL now. With `include_delivered` false, only what was never
    acknowledged is sent again. Returns how many deliveries were queued.
    """
    if task_id is None and since is None and until is None and not record_ids and not uuids:
        raise ValueError("requeue needs a task, a time range, record ids or uuids")
    conditions: list[ColumnElement[bool]] = []
    if account_id is not None:
        conditions.append(call_records.c.account_id == account_id)
    if task_id is not None:
        conditions.append(call_records.c.task_id == task_id)
    if since is not None:
        conditions.append(call_records.c.created_at >= since)
    if until is not None:
        conditions.append(call_records.c.created_at < until)
    if record_ids:
        conditions.append(call_records.c.id.in_(list(record_ids)))
    if uuids:
        conditions.append(call_records.c.uuid.in_(list(uuids)))
    matching = select(call_records.c.id).where(and_(*conditions))
    statuses = OUTBOX_STATES if include_delivered else ("pending", "dead")

    updated = conn.execute(
        outbox.update()
        .where(outbox.c.record_id.in_(matching), outbox.c.status.in_(statuses))
        .values(
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            delivered_at=None,
            last_status=None,
            last_error=None,
            url=_current_url(),
        )
        .returning(outbox.c.id)
    ).all()

    missing = (
        select(
            call_records.c.id,
            call_records.c.account_id,
            accounts.c.callback_url,
            literal("pending"),
            literal(0),
            literal(now, Timestamp()),
            literal(now, Timestamp()),
        )
        .join(accounts, accounts.c.id == call_records.c.account_id)
        .where(
            *conditions,
            func.coalesce(accounts.c.callback_url, "") != "",
            ~exists().where(outbox.c.record_id == call_records.c.id),
        )
    )
    inserted = conn.execute(
        outbox.insert()
        .from_select(
            [
                "record_id",
                "account_id",
                "url",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
            ],
            missing,
        )
        .returning(outbox.c.id)
    ).all()
    if updated or inserted:
        outbox_due(conn)
    # RETURNING, not rowcount: SQLAlchemy reports -1 for INSERT ... SELECT on PostgreSQL.
    return len(updated) + len(inserted)


def count_deliveries(conn: Connection, *, now: datetime) -> DeliveryCounts:
    """Deliveries by state, for metrics and `ivrcast` status pages."""
    by_status = dict.fromkeys(OUTBOX_STATES, 0)
    for status, count in conn.execute(
        select(outbox.c.status, func.count()).group_by(outbox.c.status)
    ):
        by_status[status] = count
    due, oldest = conn.execute(
        select(func.count(), func.min(outbox.c.next_attempt_at)).where(
            outbox.c.status == "pending", outbox.c.next_attempt_at <= now
        )
    ).one()
    return DeliveryCounts(
        pending=by_status["pending"],
        due=due,
        delivered=by_status["delivered"],
        dead=by_status["dead"],
        oldest_due_at=oldest,
    )
