"""The dialer's statements: what is due, claiming it, progress, ending, and dialer nodes.

Each function is one transition or one read, and runs inside the caller's transaction
(`Database.write()` for anything that writes). The claim is the only way a call leaves
`queued` for `dialing`, and it is durable before the INVITE leaves: on PostgreSQL the
rows are taken with `FOR UPDATE SKIP LOCKED`, so several dialers never take the same
row; on SQLite `BEGIN IMMEDIATE` serialises writers and the lock clause is dropped.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, exists, func, or_, select

from ivrcast.store.records import RecordBuilder, finish_calls, write_records
from ivrcast.store.tables import (
    ACTIVE_STATES,
    FINAL_STATES,
    Timestamp,
    accounts,
    calls,
    nodes,
    tasks,
    voices,
)


@dataclass(frozen=True)
class DueTask:
    """An active task with calls still queued, and what dialing one of them needs."""

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


@dataclass(frozen=True)
class ClaimedCall:
    id: int
    uuid: str
    task_id: str
    account_id: int
    nationcode: str
    number: str


def due_tasks(conn: Connection) -> list[DueTask]:
    """Active tasks that have queued calls, oldest first, with their queued count."""
    queued = (
        select(calls.c.task_id, func.count().label("queued"))
        .where(calls.c.status == "queued")
        .group_by(calls.c.task_id)
        .subquery()
    )
    rows = conn.execute(
        select(
            tasks.c.id,
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
            queued.c.queued,
            accounts.c.max_concurrency,
        )
        .join(queued, queued.c.task_id == tasks.c.id)
        .join(accounts, accounts.c.id == tasks.c.account_id)
        .where(tasks.c.status == "active", accounts.c.disabled.is_(False))
        .order_by(tasks.c.created_at, tasks.c.id)
    )
    return [DueTask(**row._mapping) for row in rows]


def active_calls_by_account(conn: Connection) -> dict[int, int]:
    """Calls in dialing, ringing or answered, per account, on every dialer node."""
    rows = conn.execute(
        select(calls.c.account_id, func.count())
        .where(calls.c.status.in_(ACTIVE_STATES))
        .group_by(calls.c.account_id)
    )
    return {account_id: count for account_id, count in rows}


def claim_due_calls(
    conn: Connection, *, task_id: str, limit: int, node_id: str, now: datetime
) -> list[ClaimedCall]:
    """queued -> dialing: take up to `limit` calls of a task, in submission order, for
    `node_id`. Rows another dialer holds locked are skipped, not waited for.

    Two statements, not `UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP
    LOCKED)`: PostgreSQL may rescan such a subquery and update more than `limit` rows,
    and a claimed call nobody dials would sit in `dialing` until recovery.
    """
    if limit <= 0:
        return []
    due = (
        select(calls.c.id)
        .where(calls.c.task_id == task_id, calls.c.status == "queued")
        .order_by(calls.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    claim = (
        calls.update()
        .where(calls.c.id.in_(ids), calls.c.status == "queued")
        .values(status="dialing", node_id=node_id, claimed_at=now)
        .returning(
            calls.c.id,
            calls.c.uuid,
            calls.c.task_id,
            calls.c.account_id,
            calls.c.nationcode,
            calls.c.number,
        )
    )
    claimed = [ClaimedCall(**row._mapping) for row in conn.execute(claim)]
    claimed.sort(key=lambda call: call.id)
    return claimed


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
        .values(status="queued", node_id=None, claimed_at=None, trunk=None, disnumber=None)
    )
    return result.rowcount


@dataclass(frozen=True)
class Invite:
    """An INVITE left for a call: through `trunk`, with caller ID `disnumber`."""

    call_id: int
    trunk: str
    disnumber: str
    at: datetime


# The dialer writes progress in batches: one statement, many parameter sets. Bound
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


def finish_active_calls(
    conn: Connection,
    outcomes: Sequence[tuple[int, Mapping[str, Any]]],
    *,
    build_record: RecordBuilder,
    now: datetime,
) -> int:
    """dialing | ringing | answered -> a final state, each with its record and outbox
    row: the dialer's outcomes, many per transaction. Every `values` mapping has the
    same keys, `status` (a final state) among them. Returns how many calls ended; a call
    that had already ended another way (another node's recovery) is left as it is.

    This is `records.finish_calls` for a batch with a value set per call: the rows are
    locked and read first, so the guarded UPDATE runs once, as one statement with many
    parameter sets, and the records of the whole batch are written by one
    `records.write_records`.
    """
    if not outcomes:
        return 0
    by_id = {call_id: values for call_id, values in outcomes}
    for values in by_id.values():
        if values["status"] not in FINAL_STATES:
            raise ValueError(f"{values['status']!r} is not a final state")
    still_active = (
        select(calls.c.id)
        .where(calls.c.id.in_(list(by_id)), calls.c.status.in_(ACTIVE_STATES))
        .with_for_update()
    )
    live = sorted(conn.execute(still_active).scalars())
    if not live:
        return 0
    columns = sorted(next(iter(by_id.values())))
    conn.execute(
        calls.update()
        .where(calls.c.id == bindparam("b_id"), _status_is(*ACTIVE_STATES))
        .values(node_id=None, **{column: bindparam(f"b_{column}") for column in columns}),
        [{"b_id": call_id, **{f"b_{c}": by_id[call_id][c] for c in columns}} for call_id in live],
    )
    finished = [
        dict(row._mapping) for row in conn.execute(select(calls).where(calls.c.id.in_(live)))
    ]
    write_records(conn, finished, build_record=build_record, now=now)
    return len(finished)


def expire_queued_calls(
    conn: Connection, task_ids: Collection[str], *, build_record: RecordBuilder, now: datetime
) -> int:
    """queued -> expired: todayonly=1 calls whose local day's window has closed."""
    if not task_ids:
        return 0
    finished = finish_calls(
        conn,
        calls.c.task_id.in_(list(task_ids)),
        from_states=("queued",),
        values={"status": "expired", "sip_reason": "the calling window of the day closed"},
        build_record=build_record,
        now=now,
    )
    return len(finished)


def finish_ended_tasks(conn: Connection, *, now: datetime) -> int:
    """active -> finished (canceled stays canceled), with `ended_at`: tasks with no call
    left queued or in progress."""
    pending = exists().where(
        calls.c.task_id == tasks.c.id, calls.c.status.in_(("queued", *ACTIVE_STATES))
    )
    total = 0
    for status, new_status in (("active", "finished"), ("canceled", "canceled")):
        result = conn.execute(
            tasks.update()
            .where(tasks.c.status == status, tasks.c.ended_at.is_(None), ~pending)
            .values(status=new_status, ended_at=now)
        )
        total += result.rowcount
    return total


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
    finished = finish_calls(
        conn,
        calls.c.node_id.in_(list(node_ids)),
        from_states=ACTIVE_STATES,
        values={
            "status": "interrupted",
            "sip_reason": "the dialer stopped while the call was in progress",
        },
        build_record=build_record,
        now=now,
    )
    return len(finished)


def voice_audio_many(
    conn: Connection, voice_ids: Collection[int]
) -> dict[int, tuple[bytes, bytes]]:
    """The PCMU and PCMA renditions of several voices."""
    if not voice_ids:
        return {}
    rows = conn.execute(
        select(voices.c.id, voices.c.pcmu, voices.c.pcma).where(voices.c.id.in_(list(voice_ids)))
    )
    return {row.id: (bytes(row.pcmu), bytes(row.pcma)) for row in rows}


# -- dialer nodes ----------------------------------------------------------------------


def register_node(
    conn: Connection, *, node_id: str, hostname: str, pid: int, now: datetime
) -> None:
    """A dialer process starts: its row, first heartbeat now."""
    conn.execute(
        nodes.insert().values(
            id=node_id, hostname=hostname, pid=pid, started_at=now, heartbeat_at=now
        )
    )


def heartbeat(conn: Connection, *, node_id: str, now: datetime) -> None:
    conn.execute(nodes.update().where(nodes.c.id == node_id).values(heartbeat_at=now))


def stop_node(conn: Connection, *, node_id: str, now: datetime) -> None:
    """The node stopped cleanly (or was found dead): it holds no calls any more."""
    conn.execute(
        nodes.update()
        .where(nodes.c.id == node_id, nodes.c.stopped_at.is_(None))
        .values(stopped_at=now)
    )


@dataclass(frozen=True)
class NodeRow:
    id: str
    hostname: str
    pid: int
    heartbeat_at: datetime


def running_nodes(conn: Connection) -> list[NodeRow]:
    """Nodes that have not stopped, live or not."""
    rows = conn.execute(
        select(nodes.c.id, nodes.c.hostname, nodes.c.pid, nodes.c.heartbeat_at).where(
            nodes.c.stopped_at.is_(None)
        )
    )
    return [NodeRow(**row._mapping) for row in rows]


def nodes_holding_calls(conn: Connection, exclude: str) -> set[str]:
    """Ids of nodes (other than `exclude`) that hold active calls, stopped or not, so
    recovery also catches a node that stopped without ending its calls."""
    rows = conn.execute(
        select(calls.c.node_id)
        .where(
            calls.c.status.in_(ACTIVE_STATES),
            calls.c.node_id.is_not(None),
            calls.c.node_id != exclude,
        )
        .distinct()
    )
    return {node_id for (node_id,) in rows}


def stopped_node_ids(conn: Connection, node_ids: Collection[str]) -> set[str]:
    if not node_ids:
        return set()
    rows = conn.execute(
        select(nodes.c.id).where(nodes.c.id.in_(list(node_ids)), nodes.c.stopped_at.is_not(None))
    )
    known = conn.execute(select(nodes.c.id).where(nodes.c.id.in_(list(node_ids))))
    unknown = set(node_ids) - {node_id for (node_id,) in known}
    # A node id with no row at all was never registered (or its row was removed): no
    # process can be heartbeating for it.
    return {node_id for (node_id,) in rows} | unknown


# -- for metrics -----------------------------------------------------------------------


def calls_by_state(conn: Connection) -> list[tuple[str, str, int]]:
    """(nationcode, status, count) over every call."""
    rows = conn.execute(
        select(calls.c.nationcode, calls.c.status, func.count()).group_by(
            calls.c.nationcode, calls.c.status
        )
    )
    return [(nation, status, count) for nation, status, count in rows]


def queue_depth(conn: Connection) -> list[tuple[str, str, int]]:
    """(nationcode, appid, queued calls) for calls waiting to be dialed."""
    rows = conn.execute(
        select(calls.c.nationcode, accounts.c.appid, func.count())
        .join(accounts, accounts.c.id == calls.c.account_id)
        .where(calls.c.status == "queued")
        .group_by(calls.c.nationcode, accounts.c.appid)
    )
    return [(nation, appid, count) for nation, appid, count in rows]


def active_by_trunk(conn: Connection) -> list[tuple[str, int]]:
    """(trunk, calls in progress) over every node; calls not yet sent have trunk ""."""
    rows = conn.execute(
        select(calls.c.trunk, func.count())
        .where(calls.c.status.in_(ACTIVE_STATES))
        .group_by(calls.c.trunk)
    )
    return [(trunk or "", count) for trunk, count in rows]
