"""The console's own queries on both engines: the per-minute aggregate behind the
overview (epoch minutes and billed seconds are written per dialect), live counts, the
delivery log, and deleting voices."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from factories import add_account, add_task, add_voice
from ivrcast.callbacks.record import build_call_record
from ivrcast.console.overview import CHART_MINUTES, OverviewTracker
from ivrcast.store.activity import activity, live_counts
from ivrcast.store.deliveries import deliveries, delivery_summary
from ivrcast.store.engine import Database, IntegrityViolation
from ivrcast.store.tables import FinalState, calls, outbox
from ivrcast.store.tasks import task_counts
from ivrcast.store.transitions import CallEnd, finish_calls_where
from ivrcast.store.voices import delete_voice, named_voices, voice_task_count

T0 = datetime(2026, 11, 26, 10, 15, 30, tzinfo=UTC)
build_record = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))


def _account(db: Database, appid: str) -> tuple[int, int]:
    """An account with a callback URL and a voice: (account id, voice id)."""
    with db.write() as conn:
        account = add_account(conn, appid, now=T0, callback_url="http://r.example/")
        voice_id = add_voice(conn, account.id, now=T0)
    return account.id, voice_id


def _task(db: Database, account_id: int, voice_id: int, numbers: list[str]) -> str:
    with db.write() as conn:
        return add_task(conn, account_id, voice_id, numbers, now=T0, local_day=date(2026, 11, 26))


def _end(db: Database, number: str, status: FinalState, at: datetime, answered: float = 0) -> None:
    with db.write() as conn:
        if answered:
            conn.execute(
                calls.update()
                .where(calls.c.number == number)
                .values(status="answered", answered_at=at - timedelta(seconds=answered))
            )
        finish_calls_where(
            conn,
            calls.c.number == number,
            CallEnd(status=status),
            from_states=("queued", "answered"),
            build_record=build_record,
            now=at,
        )


@pytest.fixture
def busy_day(database: Database) -> tuple[Database, int, str]:
    """Account `a` with a task of five calls: two answered (12 s and 30 s) at 10:16, one
    busy at 10:16, one canceled at 10:47, one still queued; account `b` with one busy."""
    a, voice_a = _account(database, "a")
    b, voice_b = _account(database, "b")
    task = _task(database, a, voice_a, [f"+6281234567{i:02d}" for i in range(1, 6)])
    _task(database, b, voice_b, ["+628999999901"])
    minute = T0.replace(second=0) + timedelta(minutes=1)
    _end(database, "+628123456701", "completed", minute + timedelta(seconds=10), answered=12)
    _end(database, "+628123456702", "completed", minute + timedelta(seconds=50), answered=30)
    _end(database, "+628123456703", "busy", minute + timedelta(seconds=20))
    _end(database, "+628123456704", "canceled", minute + timedelta(minutes=31))
    _end(database, "+628999999901", "busy", minute)
    return database, a, task


def test_the_aggregate_counts_calls_per_minute_nation_and_state(
    busy_day: tuple[Database, int, str],
) -> None:
    db, account, _ = busy_day
    minute = int(T0.timestamp()) // 60 + 1
    with db.read() as conn:
        mine = activity(conn, account, since=T0)
        everyone = activity(conn, None, since=T0)
        later = activity(conn, account, since=T0 + timedelta(minutes=2))
    by_key = {(b.minute, b.status): b for b in mine}
    assert set(by_key) == {(minute, "completed"), (minute, "busy"), (minute + 31, "canceled")}
    completed = by_key[(minute, "completed")]
    assert (completed.calls, completed.answered, completed.nationcode) == (2, 2, "id")
    assert completed.billsec == pytest.approx(42.0, abs=0.01)
    assert by_key[(minute, "busy")].billsec == 0
    assert sum(b.calls for b in everyone) == 5
    assert [b.status for b in later] == ["canceled"]


def test_live_counts_and_task_counts(busy_day: tuple[Database, int, str]) -> None:
    db, account, task = busy_day
    with db.read() as conn:
        assert live_counts(conn, account) == {"active": 0, "queued": 1}
        assert live_counts(conn, None) == {"active": 0, "queued": 1}
        counts = task_counts(conn, [task, "missing"])
    assert counts[task] == {"completed": 2, "busy": 1, "canceled": 1, "queued": 1}
    assert counts["missing"] == {}


def test_the_overview_tracker_reads_only_the_unsettled_minutes_again(
    busy_day: tuple[Database, int, str],
) -> None:
    db, account, _ = busy_day
    tracker = OverviewTracker(account, ZoneInfo("Asia/Jakarta"))
    now = T0 + timedelta(minutes=40)
    with db.read() as conn:
        first = tracker.refresh(conn, now)
        again = tracker.refresh(conn, now + timedelta(seconds=3))
    assert first["ended"] == again["ended"] == 4
    assert first["answered"] == 2
    # Canceled calls were never dialed: they do not lower the answer rate.
    assert first["answer_rate"] == pytest.approx(66.7)
    assert first["avg_billsec"] == pytest.approx(21.0)
    assert first["queued"] == 1
    assert len(first["chart"]["series"]["answered"]) == CHART_MINUTES
    assert first["chart"]["series"]["answered"][-40] == 2
    assert sum(first["chart"]["series"]["not dialed"]) == 1


def test_the_delivery_log_and_its_summary(busy_day: tuple[Database, int, str]) -> None:
    db, account, _ = busy_day
    with db.write() as conn:
        first = conn.execute(outbox.select().order_by(outbox.c.id)).first()
        assert first is not None
        conn.execute(
            outbox.update().where(outbox.c.id == first.id).values(status="dead", attempts=3)
        )
    with db.read() as conn:
        summary = delivery_summary(conn, account)
        failing = deliveries(conn, account, which="failing")
        page = deliveries(conn, account, limit=2)
        rest = deliveries(conn, account, before_id=page[-1]["id"])
        everyone = deliveries(conn, None)
    assert summary == {"all": 4, "pending": 3, "delivered": 0, "dead": 1, "failing": 1}
    assert [row["id"] for row in failing] == [first.id]
    assert len(page) + len(rest) == 4
    assert len(everyone) == 5


def test_a_voice_in_use_cannot_be_deleted(busy_day: tuple[Database, int, str]) -> None:
    db, account, _ = busy_day
    with db.read() as conn:
        voice = named_voices(conn, account)[0]
        assert voice_task_count(conn, voice.id) == 1
    with pytest.raises(IntegrityViolation), db.write() as conn:
        delete_voice(conn, account, voice.id)
