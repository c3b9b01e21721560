"""The dialer's statements on SQLite and PostgreSQL: claim, release, task ends, recovery."""

from __future__ import annotations

import functools
import json
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from factories import add_account, add_task, add_voice
from ivrcast.callbacks.record import build_call_record
from ivrcast.dialer.recovery import process_alive, recover
from ivrcast.store import nodes, transitions
from ivrcast.store.engine import Database
from ivrcast.store.tables import FinalState, call_records, calls, tasks
from ivrcast.store.transitions import CallEnd

NOW = datetime(2025, 3, 10, 3, 0, tzinfo=UTC)
BUILD = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))


def seed(db: Database, count: int, *, appid: str = "acme") -> str:
    with db.write() as conn:
        account = add_account(conn, appid, now=NOW)
        voice_id = add_voice(conn, account.id, now=NOW)
        numbers = [f"+62812000{n:04d}" for n in range(count)]
        return add_task(conn, account.id, voice_id, numbers, now=NOW, todayonly=1)


def rows(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(calls).order_by(calls.c.id))]


def test_claim_takes_at_most_the_limit_in_submission_order(database: Database) -> None:
    task_id = seed(database, 10)
    with database.write() as conn:
        due = transitions.due_tasks(conn, now=NOW, count_up_to=100)
        first = transitions.claim_due_calls(
            conn, task_id=task_id, limit=4, node_id="n1", build_record=BUILD, now=NOW
        )
        second = transitions.claim_due_calls(
            conn, task_id=task_id, limit=100, node_id="n1", build_record=BUILD, now=NOW
        )
    assert [(t.id, t.queued) for t in due] == [(task_id, 10)]
    assert [c.number for c in first] == [f"+62812000{n:04d}" for n in range(4)]
    assert len(second) == 6
    assert {(r["status"], r["node_id"], r["claimed_at"]) for r in rows(database)} == {
        ("dialing", "n1", NOW)
    }
    with database.read() as conn:
        assert transitions.due_tasks(conn, now=NOW, count_up_to=100) == []
        assert list(transitions.active_calls_by_account(conn).values()) == [10]


@pytest.mark.postgres
def test_concurrent_claims_on_postgresql_skip_locked_rows(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        task_id = seed(db, 20)
        with db.write() as first:
            taken = transitions.claim_due_calls(
                first, task_id=task_id, limit=8, node_id="a", build_record=BUILD, now=NOW
            )
            # A second dialer claims while the first transaction still holds its rows.
            with db.write() as second:
                other = transitions.claim_due_calls(
                    second, task_id=task_id, limit=100, node_id="b", build_record=BUILD, now=NOW
                )
        assert len(taken) == 8
        assert len(other) == 12
        assert not {c.id for c in taken} & {c.id for c in other}
    finally:
        db.dispose()


def test_progress_then_finish_writes_one_record(database: Database) -> None:
    task_id = seed(database, 1)
    with database.write() as conn:
        (call,) = transitions.claim_due_calls(
            conn, task_id=task_id, limit=1, node_id="n", build_record=BUILD, now=NOW
        )
        transitions.mark_invited(conn, [transitions.Invite(call.id, "t", "100", NOW)])
        transitions.mark_ringing(conn, [(call.id, NOW + timedelta(seconds=1))])
        transitions.mark_answered(conn, [(call.id, NOW + timedelta(seconds=2))])
        end = CallEnd(status="completed", sip_code=200, ended_at=NOW + timedelta(seconds=9))
        assert transitions.finish_calls(conn, {call.id: end}, build_record=BUILD, now=NOW)
        # A second end (a race with recovery) changes nothing and writes no record.
        again = CallEnd(status="interrupted", sip_code=None, ended_at=NOW)
        assert not transitions.finish_calls(conn, {call.id: again}, build_record=BUILD, now=NOW)
        assert transitions.finish_ended_tasks(conn, now=NOW) == 1
        records = conn.execute(select(call_records)).all()
        task = conn.execute(select(tasks)).one()
    (row,) = rows(database)
    assert (row["status"], row["trunk"], row["disnumber"], row["node_id"]) == (
        "completed",
        "t",
        "100",
        None,
    )
    assert row["answered_at"] == NOW + timedelta(seconds=2)
    assert len(records) == 1
    assert (task.status, task.ended_at) == ("finished", NOW)


def test_a_batch_of_outcomes_ends_each_call_once_with_its_own_values(
    database: Database,
) -> None:
    task_id = seed(database, 4)
    with database.write() as conn:
        claimed = transitions.claim_due_calls(
            conn, task_id=task_id, limit=4, node_id="n", build_record=BUILD, now=NOW
        )
        transitions.interrupt_calls(conn, ["n"], build_record=BUILD, now=NOW)  # ends all four
        queued = transitions.claim_due_calls(
            conn, task_id=task_id, limit=4, node_id="n", build_record=BUILD, now=NOW
        )
    assert queued == []
    task_id = seed(database, 3, appid="other")
    with database.write() as conn:
        claimed = transitions.claim_due_calls(
            conn, task_id=task_id, limit=3, node_id="n", build_record=BUILD, now=NOW
        )
        ends: list[tuple[FinalState, int, str]] = [
            ("completed", 200, "12"),
            ("busy", 486, ""),
            ("failed", 503, ""),
        ]
        outcomes = {
            call.id: CallEnd(status=status, sip_code=code, keys=keys)
            for call, (status, code, keys) in zip(claimed, ends, strict=True)
        }
        assert transitions.finish_calls(conn, outcomes, build_record=BUILD, now=NOW) == 3
        records = conn.execute(select(call_records.c.call_id)).scalars().all()
    got = [(r["status"], r["sip_code"], r["keys"], r["node_id"]) for r in rows(database)[4:]]
    assert got == [
        ("completed", 200, "12", None),
        ("busy", 486, "", None),
        ("failed", 503, "", None),
    ]
    assert sorted(records) == sorted([r["id"] for r in rows(database)])


def test_release_returns_only_calls_never_invited(database: Database) -> None:
    task_id = seed(database, 3)
    with database.write() as conn:
        claimed = transitions.claim_due_calls(
            conn, task_id=task_id, limit=3, node_id="n", build_record=BUILD, now=NOW
        )
        transitions.mark_invited(conn, [transitions.Invite(claimed[0].id, "t", "1", NOW)])
        assert transitions.release_calls(conn, [c.id for c in claimed], node_id="n") == 2
    assert [r["status"] for r in rows(database)] == ["dialing", "queued", "queued"]


def test_expiry_ends_queued_calls_with_records(database: Database) -> None:
    task_id = seed(database, 5)
    with database.write() as conn:
        transitions.claim_due_calls(
            conn, task_id=task_id, limit=2, node_id="n", build_record=BUILD, now=NOW
        )
        assert transitions.expire_queued_calls(conn, [task_id], build_record=BUILD, now=NOW) == 3
        assert transitions.finish_ended_tasks(conn, now=NOW) == 0  # two calls still active
        assert len(conn.execute(select(call_records)).all()) == 3
    assert [r["status"] for r in rows(database)] == ["dialing"] * 2 + ["expired"] * 3


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_recovery_interrupts_calls_of_dead_nodes_only(database: Database) -> None:
    task_id = seed(database, 6)
    later = NOW + timedelta(seconds=2)
    with database.write() as conn:
        for node, host, pid in (
            ("crashed", "here", dead_pid()),
            ("silent", "elsewhere", 1),
            ("alive", "elsewhere", 1),
        ):
            nodes.register_node(conn, node_id=node, hostname=host, pid=pid, now=NOW)
            transitions.claim_due_calls(
                conn, task_id=task_id, limit=2, node_id=node, build_record=BUILD, now=NOW
            )
        nodes.heartbeat(conn, node_id="alive", now=NOW + timedelta(seconds=30))
        nodes.register_node(conn, node_id="me", hostname="here", pid=1, now=later)
        result = recover(
            conn,
            node_id="me",
            hostname="here",
            heartbeat_seconds=5,
            build_record=BUILD,
            now=NOW + timedelta(seconds=31),
        )
    assert result.interrupted == 4
    assert set(result.dead_nodes) == {"crashed", "silent"}
    assert result.live_nodes == 2
    by_node = [(r["status"], r["node_id"]) for r in rows(database)]
    assert by_node[:4] == [("interrupted", None)] * 4
    assert by_node[4:] == [("dialing", "alive")] * 2
    with database.read() as conn:
        assert len(conn.execute(select(call_records)).all()) == 4
        assert {n.id for n in nodes.running_nodes(conn)} == {"alive", "me"}


def test_process_alive() -> None:
    assert process_alive(1)
    assert not process_alive(dead_pid())


def test_an_end_keeps_the_progress_it_does_not_know_and_ends_when_written(
    database: Database,
) -> None:
    task_id = seed(database, 2)
    later = NOW + timedelta(seconds=30)
    with database.write() as conn:
        first, second = transitions.claim_due_calls(
            conn, task_id=task_id, limit=2, node_id="n", build_record=BUILD, now=NOW
        )
        transitions.mark_invited(conn, [transitions.Invite(first.id, "t", "100", NOW)])
        transitions.mark_answered(conn, [(first.id, NOW + timedelta(seconds=2))])
        ends = {
            first.id: CallEnd(status="completed", sip_code=200, keys="7"),
            second.id: CallEnd(status="failed", ended_at=NOW + timedelta(seconds=1)),
        }
        assert transitions.finish_calls(conn, ends, build_record=BUILD, now=later) == 2
        payloads = {
            call_id: json.loads(payload)
            for call_id, payload in conn.execute(
                select(call_records.c.call_id, call_records.c.payload)
            )
        }
    one, two = rows(database)
    assert (one["trunk"], one["disnumber"], one["invited_at"]) == ("t", "100", NOW)
    assert one["answered_at"] == NOW + timedelta(seconds=2)
    assert (one["sip_code"], one["keys"], one["ended_at"]) == (200, "7", later)
    assert (two["status"], two["ended_at"], two["trunk"]) == (
        "failed",
        NOW + timedelta(seconds=1),
        None,
    )
    assert payloads[first.id]["billsec"] == 28
    assert payloads[first.id]["userkey"] == "7"


def test_a_call_end_is_a_final_state() -> None:
    with pytest.raises(ValueError, match="'answered' is not a final state"):
        CallEnd(status="answered")  # type: ignore[arg-type]  # a state CallEnd refuses
