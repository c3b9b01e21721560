"""Retry rounds in the store, on SQLite and PostgreSQL: a retried outcome queues the next
round in the transaction of the end, due `retryinterval` after it; the rest never do."""

from __future__ import annotations

import functools
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ivrcast.callbacks.record import build_call_record
from ivrcast.store import transitions
from ivrcast.store.accounts import create_account
from ivrcast.store.engine import Database
from ivrcast.store.tables import call_records, calls, tasks
from ivrcast.store.tasks import NewTask, RetryPolicy, cancel_task, create_task
from ivrcast.store.transitions import CallEnd
from ivrcast.store.voices import insert_voice

NOW = datetime(2025, 3, 10, 3, 0, tzinfo=UTC)
BUILD = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))
NUMBER = "+6281200000001"


def seed(db: Database, retry: RetryPolicy, *, numbers: int = 1) -> str:
    with db.write() as conn:
        account = create_account(conn, appid="acme", accesskey_hash="0" * 64, now=NOW)
        voice = insert_voice(
            conn,
            account_id=account.id,
            name="v",
            source_url=None,
            source_format="wav",
            source_bytes=160,
            duration_ms=20,
            pcmu=b"\xff" * 160,
            pcma=b"\xd5" * 160,
            now=NOW,
        )
        return create_task(
            conn,
            NewTask(
                account_id=account.id,
                nationcode="id",
                voice_id=voice.id,
                numbers=[f"+628120000{n:04d}" for n in range(1, numbers + 1)],
                userkey=False,
                todayonly=2,
                waittime=30,
                conntime=60,
                disnumber=None,
                chengshudu="",
                customuuid="",
                duplicates=0,
                invalid=0,
                local_day=date(2025, 3, 10),
                retry=retry,
            ),
            now=NOW,
        )


def claim(db: Database, task_id: str, now: datetime) -> list[transitions.ClaimedCall]:
    with db.write() as conn:
        return transitions.claim_due_calls(
            conn, task_id=task_id, limit=10, node_id="n", build_record=BUILD, now=now
        )


def end(db: Database, call_id: int, status: str, at: datetime) -> None:
    with db.write() as conn:
        transitions.finish_calls(
            conn,
            {call_id: CallEnd(status=status, ended_at=at)},  # type: ignore[arg-type]
            build_record=BUILD,
            now=at,
        )


def all_calls(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(calls).order_by(calls.c.id))]


def payloads(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [
            json.loads(p)
            for p in conn.execute(select(call_records.c.payload).order_by(call_records.c.id))
            .scalars()
            .all()
        ]


def task_status(db: Database, task_id: str) -> str:
    with db.read() as conn:
        status: str = conn.execute(select(tasks.c.status).where(tasks.c.id == task_id)).scalar_one()
        return status


def test_a_busy_number_is_dialled_again_after_the_interval_until_its_last_round(
    database: Database,
) -> None:
    task_id = seed(database, RetryPolicy(retries=2, interval_minutes=10))
    at = NOW
    for round_number in (1, 2, 3):
        (call,) = claim(database, task_id, at)
        end(database, call.id, "busy", at)
        if round_number < 3:
            # Not due before the interval has passed from the end of this round.
            assert claim(database, task_id, at + timedelta(minutes=10) - timedelta(seconds=1)) == []
            at += timedelta(minutes=10)
    records = payloads(database)
    assert [(r["round"], r["final"], r["status"]) for r in records] == [
        (1, False, "busy"),
        (2, False, "busy"),
        (3, True, "busy"),
    ]
    assert {r["e164"] for r in records} == {NUMBER}
    assert len({r["uuid"] for r in records}) == 3
    with database.write() as conn:
        transitions.finish_ended_tasks(conn, now=at)
    assert task_status(database, task_id) == "finished"


def test_the_task_is_not_finished_while_a_later_round_waits(database: Database) -> None:
    task_id = seed(database, RetryPolicy(retries=1, interval_minutes=30))
    (call,) = claim(database, task_id, NOW)
    end(database, call.id, "no_answer", NOW)
    with database.write() as conn:
        transitions.finish_ended_tasks(conn, now=NOW)
        due = transitions.due_tasks(conn, now=NOW, count_up_to=100)
    assert task_status(database, task_id) == "active"
    # Listed (so its day can still expire it) with nothing due yet.
    assert [(t.id, t.queued) for t in due] == [(task_id, 0)]
    with database.read() as conn:
        later = transitions.due_tasks(conn, now=NOW + timedelta(minutes=30), count_up_to=100)
    assert [(t.id, t.queued) for t in later] == [(task_id, 1)]


@pytest.mark.parametrize("status", ["completed", "canceled", "expired", "interrupted", "machine"])
def test_outcomes_never_retried(database: Database, status: str) -> None:
    task_id = seed(database, RetryPolicy(retries=5, on=("busy", "no_answer", "failed", "rejected")))
    (call,) = claim(database, task_id, NOW)
    end(database, call.id, status, NOW)
    assert [(c["round"], c["status"], c["final"]) for c in all_calls(database)] == [
        (1, status, True)
    ]
    assert payloads(database)[0]["final"] is True


def test_only_the_outcomes_in_retryon_are_retried(database: Database) -> None:
    task_id = seed(database, RetryPolicy(retries=1, on=("rejected",)), numbers=2)
    first, second = claim(database, task_id, NOW)
    end(database, first.id, "busy", NOW)
    end(database, second.id, "rejected", NOW)
    assert [(c["number"], c["round"], c["status"]) for c in all_calls(database)] == [
        ("+6281200000001", 1, "busy"),
        ("+6281200000002", 1, "rejected"),
        ("+6281200000002", 2, "queued"),
    ]


def test_a_canceled_task_queues_no_next_round_and_cancels_a_waiting_one(
    database: Database,
) -> None:
    task_id = seed(database, RetryPolicy(retries=3), numbers=2)
    first, second = claim(database, task_id, NOW)
    end(database, first.id, "busy", NOW)
    with database.write() as conn:
        assert cancel_task(conn, None, task_id, build_record=BUILD, now=NOW) == 1
    end(database, second.id, "busy", NOW)
    assert [(c["number"], c["round"], c["status"], c["final"]) for c in all_calls(database)] == [
        ("+6281200000001", 1, "busy", False),
        ("+6281200000002", 1, "busy", True),
        ("+6281200000001", 2, "canceled", True),
    ]


def test_an_end_and_its_next_round_are_one_transaction(database: Database) -> None:
    """A failure after the next round was queued (a crash before commit) leaves neither:
    the call is still in progress, for recovery, and no round 2 exists."""
    task_id = seed(database, RetryPolicy(retries=1))
    (call,) = claim(database, task_id, NOW)

    def broken(call: Any, task: Any) -> dict[str, object]:
        raise RuntimeError("crash while writing the record")

    with pytest.raises(RuntimeError), database.write() as conn:
        transitions.finish_calls(
            conn, {call.id: CallEnd(status="busy")}, build_record=broken, now=NOW
        )
    assert [(c["round"], c["status"]) for c in all_calls(database)] == [(1, "dialing")]
