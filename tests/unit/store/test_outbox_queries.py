"""The outbox queries on both engines: claim with a lease, transitions, replay, counts."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from callback_world import T0, finish_task, make_account, outbox_rows, set_callback
from ivrcast.store.engine import Database
from ivrcast.store.outbox import (
    Delivery,
    Outcome,
    claim_due_deliveries,
    count_deliveries,
    record_outcomes,
    release_deliveries,
    requeue_deliveries,
)

LEASE = timedelta(seconds=40)


def delivered(d: Delivery, at: datetime = T0) -> Outcome:
    return Outcome(d.id, d.url, 200, at)


def dead(d: Delivery, error: str = "x", status: int | None = None) -> Outcome:
    return Outcome(d.id, d.url, status, T0, error=error)


def claim(
    db: Database, *, at: timedelta = timedelta(0), limit: int = 100, **kw: object
) -> list[Delivery]:
    now = T0 + at
    with db.write() as conn:
        return claim_due_deliveries(conn, now=now, lease_until=now + LEASE, limit=limit, **kw)  # type: ignore[arg-type]


def test_records_of_an_account_with_a_url_get_a_pending_delivery(database: Database) -> None:
    with_url = make_account(database, "a", callback_url="http://a.example/cb")
    without = make_account(database, "b", callback_url=None)
    finish_task(database, with_url, 3)
    finish_task(database, without, 2)
    rows = outbox_rows(database)
    assert [(r["account_id"], r["status"], r["attempts"]) for r in rows] == [
        (with_url.id, "pending", 0)
    ] * 3


def test_a_claim_leases_rows_until_the_lease_ends(database: Database) -> None:
    account = make_account(database, "a", callback_url="http://a.example/cb")
    finish_task(database, account, 5)
    first = claim(database, limit=3)
    assert len(first) == 3
    second = claim(database)
    assert len(second) == 2
    assert {d.id for d in first}.isdisjoint(d.id for d in second)
    assert claim(database, at=LEASE - timedelta(seconds=1)) == []
    again = claim(database, at=LEASE)
    assert len(again) == 5
    delivery = again[0]
    assert delivery.secret == "s3cret"
    assert delivery.attempts == 0
    assert delivery.created_at == T0
    assert delivery.url == "http://a.example/cb"
    assert '"uuid":"' + delivery.uuid + '"' in delivery.payload


def test_a_claim_takes_the_accounts_current_url_and_secret(database: Database) -> None:
    account = make_account(database, "a", callback_url="http://old.example/cb")
    finish_task(database, account, 1)
    set_callback(database, "a", callback_url="http://new.example/cb", callback_secret=None)
    (delivery,) = claim(database)
    assert delivery.url == "http://new.example/cb"
    assert delivery.secret is None
    assert outbox_rows(database)[0]["url"] == "http://new.example/cb"


def test_clearing_the_url_keeps_queued_deliveries_going_to_the_old_one(
    database: Database,
) -> None:
    account = make_account(database, "a", callback_url="http://old.example/cb")
    finish_task(database, account, 1)
    set_callback(database, "a", callback_url="")
    (delivery,) = claim(database)
    assert delivery.url == "http://old.example/cb"


def test_a_per_account_claim_serves_every_due_account(database: Database) -> None:
    busy = make_account(database, "busy", callback_url="http://busy.example/cb")
    other = make_account(database, "other", callback_url="http://other.example/cb")
    third = make_account(database, "third", callback_url="http://third.example/cb")
    finish_task(database, busy, 6, now=T0 - timedelta(seconds=2))
    finish_task(database, other, 3, now=T0 - timedelta(seconds=1))
    finish_task(database, third, 3)
    claimed = claim(database, limit=5, per_account=2, account_limits={busy.id: 1})
    # Oldest account first, each within its room, until the limit.
    assert [d.account_id for d in claimed] == [busy.id, other.id, other.id, third.id, third.id]
    claimed = claim(database, per_account=10, account_limits={busy.id: 0})
    assert sorted(d.account_id for d in claimed) == [other.id, third.id]


def test_a_per_account_claim_passes_over_accounts_with_nothing_due(database: Database) -> None:
    leased = make_account(database, "leased", callback_url="http://leased.example/cb")
    done = make_account(database, "done", callback_url="http://done.example/cb")
    none = make_account(database, "none", callback_url="http://none.example/cb")
    later = make_account(database, "later", callback_url="http://later.example/cb")
    finish_task(database, leased, 2, now=T0 - timedelta(seconds=3))
    finish_task(database, done, 1, now=T0 - timedelta(seconds=2))
    finish_task(database, later, 2, now=T0 - timedelta(seconds=1))
    claim(database, per_account=1, account_limits={later.id: 0, done.id: 0})
    (finished,) = claim(database, per_account=1, account_limits={leased.id: 0, later.id: 0})
    with database.write() as conn:
        record_outcomes(conn, [delivered(finished)])
    # `leased` has one row leased and one due, `done` only a delivered row, `none` no
    # rows at all: the walk over the accounts goes on past each to the later ones.
    claimed = claim(database, per_account=5)
    assert [d.account_id for d in claimed] == [leased.id, later.id, later.id]
    assert none.id not in {d.account_id for d in claimed}
    assert claim(database, per_account=5) == []


def test_transitions_apply_once_and_only_from_pending(database: Database) -> None:
    account = make_account(database, "a", callback_url="http://a.example/cb")
    finish_task(database, account, 3)
    a, b, c = claim(database)
    later = T0 + timedelta(minutes=1)
    retry = Outcome(b.id, b.url, 503, T0, error="e" * 900, retry_at=later)
    with database.write() as conn:
        assert record_outcomes(conn, [delivered(a, later), retry, dead(c, "gone")]) == 3
        # Rows no longer pending are left alone.
        assert record_outcomes(conn, [dead(a), dead(c, "again"), delivered(c)]) == 0
    rows = {r["id"]: r for r in outbox_rows(database)}
    assert rows[a.id]["status"] == "delivered"
    assert rows[a.id]["attempts"] == 1
    assert rows[a.id]["delivered_at"] == later
    assert rows[a.id]["last_status"] == 200
    assert rows[b.id]["status"] == "pending"
    assert rows[b.id]["attempts"] == 1
    assert rows[b.id]["next_attempt_at"] == later
    assert rows[b.id]["last_error"] == "e" * 500
    assert rows[c.id]["status"] == "dead"
    assert rows[c.id]["last_error"] == "gone"


def test_released_rows_are_due_again_without_an_attempt(database: Database) -> None:
    account = make_account(database, "a", callback_url="http://a.example/cb")
    finish_task(database, account, 2)
    claimed = claim(database)
    with database.write() as conn:
        assert release_deliveries(conn, [d.id for d in claimed], next_attempt_at=T0) == 2
    assert [d.attempts for d in claim(database)] == [0, 0]


def test_requeue_by_task_resets_every_delivery_of_its_records(database: Database) -> None:
    account = make_account(database, "a", callback_url="http://a.example/cb")
    replayed = finish_task(database, account, 2)
    finish_task(database, account, 1)
    for delivery in claim(database):
        with database.write() as conn:
            record_outcomes(conn, [delivered(delivery)])
    later = T0 + timedelta(days=3)
    with database.write() as conn:
        assert requeue_deliveries(conn, now=later, task_id=replayed) == 2
    rows = outbox_rows(database)
    assert sorted(r["status"] for r in rows) == ["delivered", "pending", "pending"]
    pending = [r for r in rows if r["status"] == "pending"]
    assert all(r["attempts"] == 0 and r["created_at"] == later for r in pending)
    assert all(r["delivered_at"] is None and r["next_attempt_at"] == later for r in pending)


def test_requeue_creates_deliveries_for_records_that_had_none(database: Database) -> None:
    account = make_account(database, "a", callback_url=None)
    task = finish_task(database, account, 2)
    assert outbox_rows(database) == []
    later = T0 + timedelta(hours=1)
    with database.write() as conn:
        assert requeue_deliveries(conn, now=later, task_id=task) == 0
    set_callback(database, "a", callback_url="http://a.example/late")
    with database.write() as conn:
        assert requeue_deliveries(conn, now=later, since=T0 - timedelta(seconds=1)) == 2
    rows = outbox_rows(database)
    assert [(r["status"], r["url"], r["next_attempt_at"]) for r in rows] == [
        ("pending", "http://a.example/late", later)
    ] * 2


def test_requeue_filters_combine(database: Database) -> None:
    a = make_account(database, "a", callback_url="http://a.example/cb")
    b = make_account(database, "b", callback_url="http://b.example/cb")
    finish_task(database, a, 2, now=T0)
    finish_task(database, b, 2, now=T0 + timedelta(hours=2))
    (one, *_) = claim(database, at=timedelta(hours=3))
    with database.write() as conn:
        record_outcomes(conn, [dead(one)])
    newer = outbox_rows(database)[2]
    now = T0 + timedelta(days=1)
    with database.write() as conn:
        assert requeue_deliveries(conn, now=now, until=T0 + timedelta(hours=1)) == 2
        assert (
            requeue_deliveries(conn, now=now, account_id=a.id, since=T0 + timedelta(hours=1)) == 0
        )
        assert requeue_deliveries(conn, now=now, record_ids=[newer["record_id"]]) == 1
    with pytest.raises(ValueError, match="requeue needs"), database.write() as conn:
        requeue_deliveries(conn, now=now, account_id=a.id)


def test_requeue_without_delivered_resends_only_what_never_arrived(database: Database) -> None:
    account = make_account(database, "a", callback_url="http://a.example/cb")
    task = finish_task(database, account, 3)
    first, second, _third = claim(database)
    with database.write() as conn:
        record_outcomes(conn, [delivered(first), dead(second, status=500)])
        assert requeue_deliveries(conn, now=T0, task_id=task, include_delivered=False) == 2
    assert [r["status"] for r in outbox_rows(database)] == ["delivered", "pending", "pending"]


def test_counts(database: Database) -> None:
    account = make_account(database, "a", callback_url="http://a.example/cb")
    finish_task(database, account, 4)
    first, second = claim(database, limit=2)
    with database.write() as conn:
        record_outcomes(conn, [delivered(first), dead(second)])
        counts = count_deliveries(conn, now=T0)
    assert (counts.pending, counts.due, counts.delivered, counts.dead) == (2, 2, 1, 1)
    assert counts.oldest_due_at == T0


def test_concurrent_claims_never_share_a_row(database_url: str) -> None:
    """Four senders, each with its own engine (as separate processes would be)."""
    setup = Database(database_url)
    account = make_account(setup, "a", callback_url="http://a.example/cb")
    for _ in range(4):
        finish_task(setup, account, 50)
    setup.dispose()
    taken: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def sender(index: int) -> None:
        db = Database(database_url)
        start.wait()
        while batch := claim(db, limit=7):
            taken[index].extend(d.id for d in batch)
        db.dispose()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [row_id for ids in taken for row_id in ids]
    assert len(every) == len(set(every)) == 200


def test_a_claims_update_looks_its_rows_up_by_id(database: Database) -> None:
    """The lease's UPDATE names the claimed ids and nothing else: with the claim's WHERE
    repeated, SQLite (which has no statistics) walked the account's whole pending range
    through the claim index instead, a cost growing with the backlog."""
    account = make_account(database, "a", callback_url="http://a.example/cb")
    finish_task(database, account, 300)
    updates: list[tuple[str, Any]] = []

    def keep(
        conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool
    ) -> None:
        if statement.startswith("UPDATE outbox"):
            updates.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", keep)
    try:
        assert len(claim(database, limit=50, per_account=20)) == 20
    finally:
        event.remove(database.engine, "before_cursor_execute", keep)
    assert len(updates) == 1
    statement, parameters = updates[0]
    assert " IN " in statement
    assert "status" not in statement.split("WHERE", 1)[1].split("RETURNING", 1)[0]
    if database.engine.dialect.name == "sqlite":
        with database.engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        assert plan[0][3] == "SEARCH outbox USING INTEGER PRIMARY KEY (rowid=?)", plan
