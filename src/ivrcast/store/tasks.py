"""Tasks (one submission) and their call rows: creation, progress, cancellation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from ivrcast.errors import NotFoundError
from ivrcast.store.bulk import insert_rows, streams_rows
from ivrcast.store.engine import Database
from ivrcast.store.ids import time_ordered_uuids
from ivrcast.store.records import RecordBuilder
from ivrcast.store.tables import CALL_STATES, FINAL_STATES, calls, tasks, voices
from ivrcast.store.transitions import CallEnd, finish_calls_where


class TaskNotFound(NotFoundError):
    """No such task."""


RETRIES_MAX = 5
"""The most retry rounds a task (or an account's default) may ask for."""


@dataclass(frozen=True)
class RetryPolicy:
    """Which outcomes of a number are dialled again, how often, and how long after."""

    retries: int = 0
    interval_minutes: int = 30
    on: tuple[str, ...] = ("busy", "no_answer")


@dataclass(frozen=True)
class NewTask:
    """What a validated submission asks for; the numbers are E.164 and distinct."""

    account_id: int
    nationcode: str
    voice_id: int
    numbers: Sequence[str]
    userkey: bool
    todayonly: int
    waittime: int
    conntime: int
    disnumber: str | None
    chengshudu: str
    customuuid: str
    duplicates: int
    invalid: int
    local_day: date
    invalid_entries: Sequence[Mapping[str, str]] = ()
    """The invalid items with their reasons, as answered to the client."""
    request_id: str | None = None
    """The client's idempotency key (`requestid`), if it sent one."""
    submitted_numbers: Sequence[str] | None = None
    """Each number as the customer wrote it, index for index with `numbers`; None when
    they were submitted as E.164 digits."""
    record: bool = False
    """Record every answered call (`record=1`)."""
    amd: bool = False
    """Detect answering machines (`amd=1`)."""
    amdaction: str | None = None
    """What to do on a machine: hangup, play or beep (None with amd off)."""
    retry: RetryPolicy = RetryPolicy()
    suppressed: int = 0
    """Numbers left out because a do-not-call list held them."""


@dataclass(frozen=True)
class TaskProgress:
    id: str
    status: str
    nationcode: str
    total: int
    counts: dict[str, int]
    """Calls by state, every round's; every state of `CALL_STATES` is present."""
    created_at: datetime
    ended_at: datetime | None
    rounds: dict[int, int]
    """Calls by round (1: one per number; 2 and later: the retry rounds queued)."""
    finished: int
    """Numbers done: their last round reached a final state (at most `total`)."""
    retries: int


def create_task(conn: Connection, new: NewTask, *, now: datetime) -> str:
    """Insert the task and one queued call per number; returns the task id.

    The caller's transaction makes the two one unit: a task never exists without its calls.
    """
    task_id = _insert_task(conn, new, now=now)
    if new.numbers:
        submitted = (
            new.submitted_numbers
            if new.submitted_numbers is not None
            else [number.lstrip("+") for number in new.numbers]
        )
        rows = zip(time_ordered_uuids(len(new.numbers), now), new.numbers, submitted, strict=True)
        _insert_calls(conn, task_id, new, rows, now=now)
    return task_id


ID_BLOCK = 512
"""Call ids made at a time while the numbers of `create_task_streamed` arrive."""


def streams_calls(db: Database) -> bool:
    """Whether `create_task_streamed` writes calls as their numbers arrive, so deciding
    numbers while it runs overlaps the database's work (PostgreSQL); elsewhere deciding
    them first, outside the writing transaction, costs less."""
    return streams_rows(db.engine.dialect)


def create_task_streamed(
    conn: Connection,
    new: NewTask,
    numbers: Iterable[tuple[str, str]],
    *,
    now: datetime,
    total: int,
) -> str:
    """`create_task` for numbers decided while they are written; returns the task id.

    `numbers` yields (E.164, as submitted) pairs, each number once, as a
    `NumberStream` does; `new.numbers` is not read. The task row goes first (the
    calls' key needs it), with `total` and `new`'s other counts as the caller expects
    them to end; if they end otherwise, the caller corrects them with `set_task_counts`
    in the same transaction, so no one ever sees the row with the wrong ones.
    """
    task_id = _insert_task(conn, new, now=now, total=total)

    def rows() -> Iterator[tuple[str, str, str]]:
        ids: list[str] = []
        for index, (number, submitted) in enumerate(numbers):
            if index % ID_BLOCK == 0:
                ids = time_ordered_uuids(ID_BLOCK, now, first=index)
            yield ids[index % ID_BLOCK], number, submitted

    _insert_calls(conn, task_id, new, rows(), now=now)
    return task_id


def set_task_counts(conn: Connection, task_id: str, new: NewTask, *, now: datetime) -> None:
    """Give a task of `create_task_streamed` the counts `create_task` writes from `new`:
    its numbers (the calls written), duplicates, invalid and suppressed items."""
    conn.execute(
        update(tasks)
        .where(tasks.c.id == task_id)
        .values(
            status="active" if new.numbers else "finished",
            ended_at=None if new.numbers else now,
            **_counts(new),
        )
    )


def _counts(new: NewTask, total: int | None = None) -> dict[str, Any]:
    return {
        "total": len(new.numbers) if total is None else total,
        "duplicates": new.duplicates,
        "invalid": new.invalid,
        "suppressed": new.suppressed,
        "invalid_entries": json.dumps(list(new.invalid_entries), ensure_ascii=False),
    }


def _insert_task(conn: Connection, new: NewTask, *, now: datetime, total: int | None = None) -> str:
    """The task row of `new` (`total`: its count instead of `new.numbers`'); returns its id."""
    task_id = uuid.uuid4().hex
    # A task without numbers has nothing to do (PlayVoice refuses such a batch with
    # 1021 before it gets here).
    active = bool(new.numbers if total is None else total)
    conn.execute(
        tasks.insert().values(
            id=task_id,
            account_id=new.account_id,
            nationcode=new.nationcode,
            voice_id=new.voice_id,
            userkey=new.userkey,
            todayonly=new.todayonly,
            waittime=new.waittime,
            conntime=new.conntime,
            disnumber=new.disnumber,
            chengshudu=new.chengshudu,
            customuuid=new.customuuid,
            status="active" if active else "finished",
            request_id=new.request_id,
            local_day=new.local_day,
            retries=new.retry.retries,
            retry_interval=new.retry.interval_minutes,
            retry_on=",".join(new.retry.on),
            created_at=now,
            ended_at=None if active else now,
            record=new.record,
            amd=new.amd,
            amdaction=new.amdaction,
            **_counts(new, total),
        )
    )
    return task_id


def _insert_calls(
    conn: Connection,
    task_id: str,
    new: NewTask,
    rows: Iterable[tuple[str, str, str]],
    *,
    now: datetime,
) -> None:
    """One queued call per (id, E.164, as submitted) row."""
    insert_rows(
        conn,
        calls,
        constant={
            "task_id": task_id,
            "account_id": new.account_id,
            "nationcode": new.nationcode,
            "status": "queued",
            "round": 1,
            "queued_at": now,
        },
        varying=("uuid", "number", "submitted_number"),
        rows=rows,
    )


def find_task_by_request_id(
    conn: Connection, account_id: int, request_id: str
) -> dict[str, Any] | None:
    row = conn.execute(
        select(tasks).where(tasks.c.account_id == account_id, tasks.c.request_id == request_id)
    ).one_or_none()
    return None if row is None else dict(row._mapping)


def get_task(conn: Connection, account_id: int | None, task_id: str) -> dict[str, Any]:
    """The task row; `account_id` None is the operator, who sees every account's tasks."""
    query = select(tasks).where(tasks.c.id == task_id)
    if account_id is not None:
        query = query.where(tasks.c.account_id == account_id)
    row = conn.execute(query).one_or_none()
    if row is None:
        raise TaskNotFound(f"taskid: no task {task_id!r}")
    return dict(row._mapping)


def task_progress(conn: Connection, account_id: int | None, task_id: str) -> TaskProgress:
    task = get_task(conn, account_id, task_id)
    counts = dict.fromkeys(CALL_STATES, 0)
    rounds: dict[int, int] = {}
    finished = 0
    rows = conn.execute(
        select(calls.c.status, calls.c.round, calls.c.final, func.count())
        .where(calls.c.task_id == task_id)
        .group_by(calls.c.status, calls.c.round, calls.c.final)
    )
    for status, round_number, final, count in rows:
        counts[status] += count
        rounds[round_number] = rounds.get(round_number, 0) + count
        if final and status in FINAL_STATES:
            finished += count
    return TaskProgress(
        id=task["id"],
        status=task["status"],
        nationcode=task["nationcode"],
        total=task["total"],
        counts=counts,
        created_at=task["created_at"],
        ended_at=task["ended_at"],
        rounds=dict(sorted(rounds.items())),
        finished=finished,
        retries=task["retries"],
    )


def cancel_task(
    conn: Connection,
    account_id: int | None,
    task_id: str,
    *,
    build_record: RecordBuilder,
    now: datetime,
) -> int:
    """Stop all further dialing of the task: its queued calls end `canceled`, each with a
    record. Calls already in progress finish normally. Returns how many were canceled."""
    task = get_task(conn, account_id, task_id)
    if task["status"] in ("active", "paused"):
        conn.execute(tasks.update().where(tasks.c.id == task_id).values(status="canceled"))
    return finish_calls_where(
        conn,
        calls.c.task_id == task_id,
        CallEnd(status="canceled"),
        from_states=("queued",),
        build_record=build_record,
        now=now,
    )


def set_task_status(
    conn: Connection, account_id: int | None, task_id: str, *, from_status: str, to_status: str
) -> str:
    """`from_status` -> `to_status` (pause: active -> paused, resume: paused -> active).
    Returns the task's status before: `from_status` when it changed, else the status that
    prevented it. Guarded by the state, so of two racing requests one changes it."""
    task = get_task(conn, account_id, task_id)
    changed = conn.execute(
        tasks.update()
        .where(tasks.c.id == task["id"], tasks.c.status == from_status)
        .values(status=to_status)
    ).rowcount
    if changed:
        return from_status
    return str(get_task(conn, account_id, task_id)["status"])


def list_tasks(
    conn: Connection, account_id: int | None, *, limit: int = 50, before: datetime | None = None
) -> list[dict[str, Any]]:
    """The newest tasks first."""
    query = select(tasks).order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(tasks.c.account_id == account_id)
    if before is not None:
        query = query.where(tasks.c.created_at < before)
    return [dict(row._mapping) for row in conn.execute(query)]


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
