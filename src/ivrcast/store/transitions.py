"""A call's transitions: what is due, claiming it, its progress, and its end.

Each function is one transition or one read, and runs inside the caller's transaction
(`Database.write()` for anything that writes). The claim is the only way a call leaves
`queued` for `dialing`, and it is durable before the INVITE leaves: on PostgreSQL the
rows are taken with `FOR UPDATE SKIP LOCKED`, so several dialers never take the same
row; on SQLite `BEGIN IMMEDIATE` serialises writers and the lock clause is dropped.

Every call reaches its final state through `finish_calls`, the one end path: the
dialer's outcomes (a `CallEnd` per call), cancel, expiry at the window's end and recovery
after a crash (`finish_calls_where`, one `CallEnd` for every call matched). "Exactly one
final state and exactly one record per call" rests on two rules held there: the UPDATE
is guarded by the call's state, so a transition happens at most once even when two
paths race (the loser matches no row and writes no record), and the record is written
by `records.write_records` in the same transaction as the transition.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    ScalarSelect,
    bindparam,
    exists,
    func,
    or_,
    select,
)

from ivrcast.store.claims import claim_rows
from ivrcast.store.dnc import GLOBAL
from ivrcast.store.ids import time_ordered_uuids
from ivrcast.store.records import RecordBuilder, write_records
from ivrcast.store.tables import (
    ACTIVE_STATES,
    FINAL_STATES,
    RETRYABLE_STATES,
    FinalState,
    Timestamp,
    accounts,
    calls,
    dnc,
    tasks,
)

# A task in these states may still get new rounds queued (a paused one dials them
# once resumed); a canceled or finished one never does.
OPEN_TASK_STATES = ("active", "paused")


@dataclass(frozen=True)
class DueTask:
    """An active or paused task with calls still queued, and what dialing one of them
    needs. `queued` counts only the calls due now (a later round waits for its time), and
    stops at `due_tasks`' `count_up_to`: `more_queued` says more are due than counted."""

    id: str
    account_id: int
    nationcode: str
    voice_id: int
    userkey: bool
    todayonly: int
    waittime: int
    conntime: int
    disnumber: str | None
    local_day: date
    created_at: datetime
    queued: int
    max_concurrency: int
    record: bool = False
    amd: bool = False
    amdaction: str | None = None
    status: str = "active"
    more_queued: bool = False


@dataclass(frozen=True)
class ClaimedCall:
    id: int
    uuid: str
    task_id: str
    account_id: int
    nationcode: str
    number: str


def _due_now(now: datetime) -> ColumnElement[bool]:
    return or_(calls.c.due_at.is_(None), calls.c.due_at <= now)


def _queued_of(task_id: ColumnElement[str] | str) -> list[ColumnElement[bool]]:
    """A task's queued calls, as the claim index (status, task_id, id) reads them."""
    return [calls.c.status == "queued", calls.c.task_id == task_id]


def _due_count(
    task_id: ColumnElement[str] | str, *, now: datetime, up_to: int
) -> ScalarSelect[int]:
    """How many of a task's calls are due at `now`, counted no further than `up_to`: the
    count walks that many entries of the claim index, not the task's whole queue. In the
    claim's order, so that no planner prefers scanning the table until `up_to` turn up."""
    due = (
        select(calls.c.id)
        .where(*_queued_of(task_id), _due_now(now))
        .order_by(calls.c.id)
        .limit(up_to)
        .correlate(tasks)
        .subquery()
    )
    return select(func.count()).select_from(due).scalar_subquery()


def due_tasks(conn: Connection, *, now: datetime, count_up_to: int) -> list[DueTask]:
    """Active and paused tasks that have queued calls, oldest first, with the count of
    those due at `now` up to `count_up_to` (`DueTask.more_queued` when there are more).
    Paused ones and ones with nothing due are listed too: the end of a todayonly=1 day
    expires their queued calls all the same.

    No statement here reads more of a task's queue than `count_up_to` + 1 index entries,
    so a round costs the same with five thousand calls queued or a million."""
    counted_column = _due_count(tasks.c.id, now=now, up_to=count_up_to + 1).label("counted")
    rows = conn.execute(
        select(
            tasks.c.id,
            tasks.c.status,
            tasks.c.account_id,
            tasks.c.nationcode,
            tasks.c.voice_id,
            tasks.c.userkey,
            tasks.c.todayonly,
            tasks.c.waittime,
            tasks.c.conntime,
            tasks.c.disnumber,
            tasks.c.local_day,
            tasks.c.created_at,
            counted_column,
            accounts.c.max_concurrency,
            tasks.c.record,
            tasks.c.amd,
            tasks.c.amdaction,
        )
        .join(accounts, accounts.c.id == tasks.c.account_id)
        .where(
            tasks.c.status.in_(OPEN_TASK_STATES),
            accounts.c.disabled.is_(False),
            exists().where(*_queued_of(tasks.c.id)),
        )
        .order_by(tasks.c.created_at, tasks.c.id)
    )
    due = []
    for row in rows:
        columns = dict(row._mapping)
        counted = columns.pop("counted")
        due.append(
            DueTask(**columns, queued=min(counted, count_up_to), more_queued=counted > count_up_to)
        )
    return due


def count_due_calls(conn: Connection, task_id: str, up_to: int, *, now: datetime) -> int:
    """How many calls of the task are due at `now`, counted no further than `up_to`."""
    return int(conn.execute(select(_due_count(task_id, now=now, up_to=up_to))).scalar_one())


def active_calls_by_account(conn: Connection) -> dict[int, int]:
    """Calls in dialing, ringing or answered, per account, on every dialer node."""
    rows = conn.execute(
        select(calls.c.account_id, func.count())
        .where(calls.c.status.in_(ACTIVE_STATES))
        .group_by(calls.c.account_id)
    )
    return {account_id: count for account_id, count in rows}


def claim_due_calls(
    conn: Connection,
    *,
    task_id: str,
    limit: int,
    node_id: str,
    build_record: RecordBuilder,
    now: datetime,
) -> list[ClaimedCall]:
    """queued -> dialing: take up to `limit` calls of a task that are due at `now`, in
    submission order (a later round after the first), for `node_id`. Rows another
    dialer holds locked are skipped, not waited for.

    The claim has the one shape of every work queue here (`store.claims`): lock the
    chosen ids, then move exactly those.

    A claimed call whose number is on a do-not-call list by now (the account's or the
    global one) ends `suppressed`, with its record, in this same transaction: it is
    never returned, so no INVITE can leave for it.
    """
    if limit <= 0:
        return []
    rows = claim_rows(
        conn,
        chosen=select(calls.c.id)
        .where(*_queued_of(task_id), _due_now(now))
        .order_by(calls.c.id)
        .limit(limit),
        # No status guard: the chosen rows are this transaction's (see `store.claims`),
        # and on SQLite one would lead the planner down the whole queued range.
        update=calls.update()
        .values(status="dialing", node_id=node_id, dialed_by=node_id, claimed_at=now)
        .returning(
            calls.c.id,
            calls.c.uuid,
            calls.c.task_id,
            calls.c.account_id,
            calls.c.nationcode,
            calls.c.number,
        ),
        id_column=calls.c.id,
    )
    claimed = [ClaimedCall(**row._mapping) for row in rows]
    claimed.sort(key=lambda call: call.id)
    suppressed = _suppress_listed(conn, [call.id for call in claimed], build_record, now)
    return [call for call in claimed if call.id not in suppressed]


def _suppress_listed(
    conn: Connection, call_ids: list[int], build_record: RecordBuilder, now: datetime
) -> set[int]:
    """dialing (just claimed, no INVITE) -> suppressed: calls to listed numbers."""
    if not call_ids:
        return set()
    on_a_list = exists().where(
        dnc.c.number == calls.c.number,
        or_(dnc.c.account_id == GLOBAL, dnc.c.account_id == calls.c.account_id),
    )
    listed = list(
        conn.execute(select(calls.c.id).where(calls.c.id.in_(call_ids), on_a_list)).scalars()
    )
    if listed:
        finish_calls(
            conn,
            dict.fromkeys(
                listed,
                CallEnd(status="suppressed", sip_reason="the number is on a do-not-call list"),
            ),
            from_states=("dialing",),
            build_record=build_record,
            now=now,
        )
    return set(listed)


def release_calls(conn: Connection, call_ids: Collection[int], *, node_id: str) -> int:
    """dialing -> queued: give back calls this node claimed but never sent an INVITE for
    (it is stopping). Only safe for calls whose INVITE has certainly not left."""
    if not call_ids:
        return 0
    result = conn.execute(
        calls.update()
        .where(
            calls.c.id.in_(list(call_ids)),
            calls.c.status == "dialing",
            calls.c.node_id == node_id,
            calls.c.invited_at.is_(None),
        )
        .values(
            status="queued",
            node_id=None,
            dialed_by=None,
            claimed_at=None,
            trunk=None,
            disnumber=None,
        )
    )
    return result.rowcount


@dataclass(frozen=True)
class Invite:
    """An INVITE left for a call: through `trunk`, with caller ID `disnumber`."""

    call_id: int
    trunk: str
    disnumber: str
    at: datetime


# Progress and ends are written in batches: one statement, many parameter sets. Bound
# names differ from column names, which SQLAlchemy reserves for the SET clause.


def _status_is(*states: str) -> ColumnElement[bool]:
    """`status IN (...)` spelt as equalities: an executemany cannot expand an IN list."""
    return or_(*(calls.c.status == state for state in states))


def mark_invited(conn: Connection, invites: Sequence[Invite]) -> None:
    """dialing (no change of state): record the trunk, caller ID and first INVITE time.
    A failover to another trunk records the new trunk and keeps the first time."""
    if not invites:
        return
    conn.execute(
        calls.update()
        .where(calls.c.id == bindparam("b_id"), calls.c.status == "dialing")
        .values(
            trunk=bindparam("b_trunk"),
            disnumber=bindparam("b_disnumber"),
            invited_at=func.coalesce(calls.c.invited_at, bindparam("b_at", type_=Timestamp())),
        ),
        [
            {"b_id": i.call_id, "b_trunk": i.trunk, "b_disnumber": i.disnumber, "b_at": i.at}
            for i in invites
        ],
    )


def mark_ringing(conn: Connection, events: Sequence[tuple[int, datetime]]) -> None:
    """dialing -> ringing: the far end sent a 18x. `events` are (call id, time)."""
    if not events:
        return
    conn.execute(
        calls.update()
        .where(calls.c.id == bindparam("b_id"), calls.c.status == "dialing")
        .values(status="ringing", ringing_at=bindparam("b_at")),
        [{"b_id": call_id, "b_at": at} for call_id, at in events],
    )


def mark_answered(conn: Connection, events: Sequence[tuple[int, datetime]]) -> None:
    """dialing | ringing -> answered: the far end sent a 2xx. `events` are (call id, time)."""
    if not events:
        return
    conn.execute(
        calls.update()
        .where(calls.c.id == bindparam("b_id"), _status_is("dialing", "ringing"))
        .values(status="answered", answered_at=bindparam("b_at")),
        [{"b_id": call_id, "b_at": at} for call_id, at in events],
    )


# -- the end of a call -----------------------------------------------------------------


@dataclass(frozen=True)
class CallEnd:
    """How a call ended: its final state and what is known of the attempt.

    Every other field left None keeps what the call row already holds: the trunk, caller
    ID and times its progress recorded (an interrupted call keeps its INVITE time), or
    nothing for a call never dialed. `ended_at` None is the moment the end is written.
    """

    status: FinalState
    ended_at: datetime | None = None
    trunk: str | None = None
    disnumber: str | None = None
    invited_at: datetime | None = None
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    sip_code: int | None = None
    sip_reason: str | None = None
    q850_cause: int | None = None
    hangup_cause: int | None = None
    hangup_direction: int | None = None
    keys: str | None = None
    codec: str | None = None
    rtp_sent: int | None = None
    rtp_received: int | None = None
    rtp_lost: int | None = None
    recorded: bool | None = None
    answered_by: str | None = None
    amd_ms: int | None = None

    def __post_init__(self) -> None:
        if self.status not in FINAL_STATES:
            raise ValueError(f"{self.status!r} is not a final state")


# The columns an end may fill in; `status` and `ended_at` are always written.
_KEPT_UNLESS_GIVEN = tuple(f.name for f in fields(CallEnd) if f.name not in ("status", "ended_at"))


def finish_calls(
    conn: Connection,
    ends: Mapping[int, CallEnd],
    *,
    from_states: Sequence[str] = ACTIVE_STATES,
    build_record: RecordBuilder,
    now: datetime,
) -> int:
    """dialing | ringing | answered (or `from_states`) -> a final state, each call with
    its record and outbox row. `ends` maps call ids to how each ended. Returns how many
    calls ended; a call no longer in `from_states` (it ended another way, say another
    node's recovery) is left as it is and gets no second record.

    The rows are locked and read first, so the guarded UPDATE runs once: one statement
    with a parameter set per call (or a single one when every call ends alike), and the
    records of the whole batch are written by one `records.write_records`.
    """
    if not ends:
        return 0
    still_there = (
        select(calls.c.id)
        .where(calls.c.id.in_(list(ends)), calls.c.status.in_(list(from_states)))
        .with_for_update()
    )
    live = sorted(conn.execute(still_there).scalars())
    if not live:
        return 0
    update = (
        calls.update()
        .where(_status_is(*from_states))
        .values(
            status=bindparam("b_status"),
            ended_at=bindparam("b_ended_at", type_=Timestamp()),
            node_id=None,
            **{
                column: func.coalesce(
                    bindparam(f"b_{column}", type_=calls.c[column].type), calls.c[column]
                )
                for column in _KEPT_UNLESS_GIVEN
            },
        )
    )
    distinct = {ends[call_id] for call_id in live}
    if len(distinct) == 1:
        # One end for every call (cancel, expiry, recovery): one plain UPDATE.
        conn.execute(update.where(calls.c.id.in_(live)), _end_parameters(distinct.pop(), now))
    else:
        conn.execute(
            update.where(calls.c.id == bindparam("b_id")),
            [{"b_id": call_id, **_end_parameters(ends[call_id], now)} for call_id in live],
        )
    finished = [
        dict(row._mapping) for row in conn.execute(select(calls).where(calls.c.id.in_(live)))
    ]
    _queue_next_rounds(conn, finished, now=now)
    write_records(conn, finished, build_record=build_record, now=now)
    return len(finished)


def _queue_next_rounds(conn: Connection, finished: list[dict[str, Any]], *, now: datetime) -> None:
    """Queue the next round of each call whose outcome its task retries, and mark the
    ended call not `final`. In the transaction of the end: a crash leaves either the
    ended call with its next round or neither, so no round is lost or dialled twice.

    The tasks are locked, so a cancel or pause racing this end either sees the new
    round (and cancels it) or commits first and is seen here.
    """
    retryable = [call for call in finished if call["status"] in RETRYABLE_STATES]
    if not retryable:
        return
    open_tasks = {
        row.id: row
        for row in conn.execute(
            select(tasks.c.id, tasks.c.retries, tasks.c.retry_interval, tasks.c.retry_on)
            .where(
                tasks.c.id.in_({call["task_id"] for call in retryable}),
                tasks.c.retries > 0,
                tasks.c.status.in_(OPEN_TASK_STATES),
            )
            .with_for_update()
        )
    }
    retried = []
    for call in retryable:
        task = open_tasks.get(call["task_id"])
        if (
            task is not None
            and call["round"] <= task.retries
            and call["status"] in task.retry_on.split(",")
        ):
            retried.append((call, timedelta(minutes=task.retry_interval)))
    if not retried:
        return
    uuids = time_ordered_uuids(len(retried), now)
    conn.execute(
        calls.insert(),
        [
            {
                "uuid": call_uuid,
                "task_id": call["task_id"],
                "account_id": call["account_id"],
                "nationcode": call["nationcode"],
                "number": call["number"],
                "submitted_number": call["submitted_number"],
                "status": "queued",
                "round": call["round"] + 1,
                "due_at": call["ended_at"] + interval,
                "queued_at": now,
            }
            for call_uuid, (call, interval) in zip(uuids, retried, strict=True)
        ],
    )
    ids = [call["id"] for call, _ in retried]
    conn.execute(calls.update().where(calls.c.id.in_(ids)).values(final=False))
    for call, _ in retried:
        call["final"] = False


def _end_parameters(end: CallEnd, now: datetime) -> dict[str, object]:
    parameters: dict[str, object] = {
        "b_status": end.status,
        "b_ended_at": end.ended_at or now,
    }
    parameters.update({f"b_{column}": getattr(end, column) for column in _KEPT_UNLESS_GIVEN})
    return parameters


def finish_calls_where(
    conn: Connection,
    where: ColumnElement[bool],
    end: CallEnd,
    *,
    from_states: Sequence[str],
    build_record: RecordBuilder,
    now: datetime,
) -> int:
    """`finish_calls` for every call matching `where` that is in one of `from_states`,
    all ending the same way: a task's queued calls (cancel, expiry), a dead node's
    active calls (recovery)."""
    matched = conn.execute(
        select(calls.c.id).where(where, calls.c.status.in_(list(from_states)))
    ).scalars()
    return finish_calls(
        conn,
        dict.fromkeys(matched, end),
        from_states=from_states,
        build_record=build_record,
        now=now,
    )


def expire_queued_calls(
    conn: Connection, task_ids: Collection[str], *, build_record: RecordBuilder, now: datetime
) -> int:
    """queued -> expired: todayonly=1 calls whose local day's window has closed."""
    if not task_ids:
        return 0
    return finish_calls_where(
        conn,
        calls.c.task_id.in_(list(task_ids)),
        CallEnd(status="expired", sip_reason="the calling window of the day closed"),
        from_states=("queued",),
        build_record=build_record,
        now=now,
    )


def interrupt_calls(
    conn: Connection,
    node_ids: Collection[str],
    *,
    build_record: RecordBuilder,
    now: datetime,
) -> int:
    """dialing | ringing | answered -> interrupted: calls held by dialer nodes that died.
    They are never dialed again: the INVITE may have left."""
    if not node_ids:
        return 0
    return finish_calls_where(
        conn,
        calls.c.node_id.in_(list(node_ids)),
        CallEnd(
            status="interrupted",
            sip_reason="the dialer stopped while the call was in progress",
        ),
        from_states=ACTIVE_STATES,
        build_record=build_record,
        now=now,
    )


def finish_ended_tasks(conn: Connection, *, now: datetime) -> int:
    """active | paused -> finished (canceled stays canceled), with `ended_at`: tasks with
    no call left queued (a later round included) or in progress."""
    pending = exists().where(
        calls.c.task_id == tasks.c.id, calls.c.status.in_(("queued", *ACTIVE_STATES))
    )
    total = 0
    for status, new_status in (
        ("active", "finished"),
        ("paused", "finished"),
        ("canceled", "canceled"),
    ):
        result = conn.execute(
            tasks.update()
            .where(tasks.c.status == status, tasks.c.ended_at.is_(None), ~pending)
            .values(status=new_status, ended_at=now)
        )
        total += result.rowcount
    return total
