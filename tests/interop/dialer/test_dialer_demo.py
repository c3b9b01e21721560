"""The dialer with no trunk: the demo carrier answers by the number's last digit; and
the parts of the service that need no carrier of their own (stop, windows, expiry)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from dialer_helpers import (
    call_rows,
    count_final,
    record_counts,
    running_dialer,
    seed_account,
    settings_for,
    submit,
)
from sqlalchemy import select

from ivrcast.clock import FrozenClock
from ivrcast.store.engine import Database
from ivrcast.store.tables import ACTIVE_STATES, call_records
from waiting import wait_for_in_thread

EXPECTED = {
    "0": ("completed", 200, "", 10040),
    "1": ("completed", 200, "", 10040),
    "2": ("completed", 200, "", 10040),
    "3": ("completed", 200, "", 10040),
    "4": ("completed", 200, "1", 10040),
    "5": ("busy", 486, "", 10041),
    "6": ("no_answer", 487, "", 10040),
    "7": ("failed", 404, "", 10041),
    "8": ("rejected", 603, "", 10041),
    "9": ("completed", 200, "", 10041),
}


async def test_demo_carrier_outcome_per_last_digit(database: Database, tmp_path: Path) -> None:
    account_id, voice_id = seed_account(database)
    numbers = [f"+6281200001{digit}" for digit in "0123456789"]
    task_id = submit(database, account_id, voice_id, numbers, userkey=True, waittime=3)
    # The key wait (3 s) outlasts the demo's hang-up at 2 s, so "9" ends by the callee.
    settings = settings_for(str(database.url), tmp_path, limits={"key_wait_seconds": 3})
    async with running_dialer(settings):
        await wait_for_in_thread(
            lambda: count_final(database, task_id) == 10, "10 final calls", limit=30
        )
    rows = call_rows(database, task_id)
    got = {
        row["number"][-1]: (
            row["status"],
            row["sip_code"],
            row["keys"],
            row["hangup_direction"],
        )
        for row in rows
    }
    assert got == EXPECTED
    for row in rows:
        assert row["trunk"] == "demo"
        if row["answered_at"] is not None:
            # Real RTP both ways: the demo plays a tone and hears our voice.
            assert row["rtp_received"] > 10
            assert row["rtp_sent"] > 10
    with database.read() as conn:
        payloads = [json.loads(p) for (p,) in conn.execute(select(call_records.c.payload))]
    assert sorted((p["destnumber"][-1], p["status"], p["userkey"]) for p in payloads) == sorted(
        (digit, status, keys) for digit, (status, _, keys, _) in EXPECTED.items()
    )


async def test_stop_ends_calls_in_progress_and_requeues_the_rest(
    database: Database, tmp_path: Path
) -> None:
    account_id, voice_id = seed_account(database)
    # Long key waits keep answered calls up until the stop ends them.
    task_id = submit(
        database, account_id, voice_id, [f"+628120000{n:03d}0" for n in range(40)], userkey=True
    )
    settings = settings_for(
        str(database.url), tmp_path, shutdown_grace=0.2, limits={"key_wait_seconds": 30}
    )
    async with running_dialer(settings):
        await wait_for_in_thread(
            lambda: sum(r["status"] == "answered" for r in call_rows(database, task_id)) >= 3,
            "answered calls",
            limit=20,
        )
    rows = call_rows(database, task_id)
    assert not [r for r in rows if r["status"] in ACTIVE_STATES]
    ended = [r for r in rows if r["status"] != "queued"]
    assert ended
    # Answered calls end completed by our BYE; ringing ones are cancelled (engine table:
    # "engine stopping before answer" is failed, 10002).
    assert sum(r["status"] == "completed" for r in ended) >= 3
    assert {r["status"] for r in ended} <= {"completed", "failed"}
    assert all(r["hangup_direction"] == 10040 for r in ended)
    queued = [r for r in rows if r["status"] == "queued"]
    assert all(r["node_id"] is None and r["invited_at"] is None for r in queued)
    assert record_counts(database) == {r["id"]: 1 for r in ended}


async def test_windows_and_todayonly_follow_the_injected_clock(
    database: Database, tmp_path: Path
) -> None:
    # 23:00 UTC on 9 March is 06:00 on 10 March in Jakarta: before its 09:00 window.
    clock = FrozenClock(datetime(2025, 3, 9, 23, 0, tzinfo=UTC))
    account_id, voice_id = seed_account(database)
    yesterday = submit(
        database, account_id, voice_id, ["+6281200000010", "+6281200000020"],
        todayonly=1, local_day=date(2025, 3, 9), now=clock.now(),
    )  # fmt: skip
    waiting = submit(
        database, account_id, voice_id, ["+6281200000030"],
        todayonly=2, local_day=date(2025, 3, 10), now=clock.now(),
    )  # fmt: skip
    settings = settings_for(str(database.url), tmp_path, countries={})
    async with running_dialer(settings, clock=clock):
        await wait_for_in_thread(lambda: count_final(database, yesterday) == 2, "expiry", limit=10)
        # The claim round that expired yesterday's task also planned the waiting one,
        # and the window was closed: it is still queued.
        assert [r["status"] for r in call_rows(database, waiting)] == ["queued"]
        clock.set(datetime(2025, 3, 10, 2, 0, tzinfo=UTC))  # 09:00 in Jakarta
        await wait_for_in_thread(
            lambda: count_final(database, waiting) == 1, "dialed in window", limit=20
        )
    assert [r["status"] for r in call_rows(database, yesterday)] == ["expired", "expired"]
    assert all(r["invited_at"] is None for r in call_rows(database, yesterday))
    assert [r["status"] for r in call_rows(database, waiting)] == ["completed"]
    assert len(record_counts(database)) == 3


async def test_a_call_the_dialer_itself_fails_ends_failed_once_with_its_record(
    database: Database, tmp_path: Path
) -> None:
    # A Philippine number in an Indonesian task: no trunk format can write it, so the
    # dialer fails the call before any INVITE, and the call must still end, once.
    account_id, voice_id = seed_account(database)
    task_id = submit(database, account_id, voice_id, ["+639171234567", "+6281200000010"])
    settings = settings_for(str(database.url), tmp_path)
    async with running_dialer(settings):
        await wait_for_in_thread(
            lambda: count_final(database, task_id) == 2, "2 final calls", limit=20
        )
    broken, fine = call_rows(database, task_id)
    assert (broken["status"], broken["trunk"], broken["invited_at"]) == ("failed", "demo", None)
    assert broken["sip_reason"].startswith("dialer error: ")
    assert (broken["hangup_cause"], broken["hangup_direction"]) == (10020, 10040)
    assert broken["ended_at"] is not None
    assert broken["node_id"] is None
    assert fine["status"] == "completed"
    assert record_counts(database) == {broken["id"]: 1, fine["id"]: 1}
