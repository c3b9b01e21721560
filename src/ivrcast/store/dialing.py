"""The dialer's statements: what is due, claiming it, progress, ending, and dialer nodes.

Each function is one transition or one read, and runs inside the caller's transaction
(`Database.write()` for anything that writes). The claim is the only way a call leaves
`queued` for `dialing`, and it is durable before the INVITE leaves: on PostgreSQL the
rows are taken with `FOR UPDATE SKIP LOCKED`, so several dialers never take the same
row; on SQLite `BEGIN IMMEDIATE` serialises writers and the lock clause is dropped.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, exists, func, select

from ivrcast.store.records import RecordBuilder, finish_calls
from ivrcast.store.tables import ACTIVE_STATES, accounts, calls, nodes, tasks, voices


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


def mark_invited(
    conn: Connection, call_id: int, *, trunk: str, disnumber: str, at: datetime
) -> None:
    """dialing (no change of state): the INVITE left through `trunk` with caller ID
    `disnumber`. A failover to another trunk records the new trunk."""
    conn.execute(
        calls.update()
        .where(calls.c.id == call_id, calls.c.status == "dialing")
        .values(trunk=trunk, disnumber=disnumber, invited_at=func.coalesce(calls.c.invited_at, at))
    )


def mark_ringing(conn: Connection, call_id: int, *, at: datetime) -> None:
    """dialing -> ringing: the far end sent a 18x."""
    conn.execute(
        calls.update()
        .where(calls.c.id == call_id, calls.c.status == "dialing")
        .values(status="ringing", ringing_at=at)
    )


def mark_answered(conn: Connection, call_id: int, *, at: datetime) -> None:
    """dialing | ringing -> answered: the far end sent a 2xx."""
    conn.execute(
        calls.update()
        .where(calls.c.id == call_id, calls.c.status.in_(("dialing", "ringing")))
        .values(status="answered", answered_at=at)
    )


def finish_call(
    conn: Connection,
    call_id: int,
    values: Mapping[str, Any],
    *,
    build_record: RecordBuilder,
    now: datetime,
) -> bool:
    """dialing | ringing | answered -> a final state, with its record. False when the
    call had already ended another way (recovery by another node marked it interrupted)."""
    finished = finish_calls(
        conn,
        calls.c.id == call_id,
        from_states=ACTIVE_STATES,
        values=values,
        build_record=build_record,
        now=now,
    )
    return bool(finished)


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
