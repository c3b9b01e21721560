"""The dialer against SIPp UAS trunks on loopback: every number ends once, limits hold,
trunk failures fail over, and a cancel stops the dialing. SIPp's message log is the
ground truth of what reached each trunk."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from dialer_helpers import (
    call_rows,
    count_final,
    cps_bound_holds,
    id_numbers,
    record_counts,
    running_dialer,
    seed_account,
    settings_for,
    start_sipp,
    submit,
)

from ivrcast.callbacks.record import build_call_record
from ivrcast.store.engine import Database
from ivrcast.store.tasks import cancel_task, task_progress
from waiting import wait_for_in_thread

BUILD_RECORD = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))


async def test_500_numbers_each_dialed_once_within_channels(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    sipp = await start_sipp(tmp_path / "sipp", "uas_dialer_answer.xml", calls=500)
    account_id, voice_id = seed_account(database)
    numbers = id_numbers(500)
    task_id = submit(database, account_id, voice_id, numbers)
    settings = settings_for(
        database_url,
        tmp_path,
        trunks=[sipp.trunk("id-main", max_channels=30, max_cps=1000, callerids=["622150001000"])],
    )
    async with running_dialer(settings):
        await wait_for_in_thread(
            lambda: count_final(database, task_id) == 500, "500 final calls", limit=90
        )
        await wait_for_in_thread(
            lambda: task_progress_status(database, task_id) == "finished", "task finished", limit=10
        )
    await sipp.finish()
    invites = sipp.invites()
    assert len(invites) == 500, sipp.logs()
    assert sorted(invites) == sorted(n.removeprefix("+") for n in numbers)
    assert all(len(ids) == 1 for ids in invites.values()), "a number got a second INVITE"
    assert sipp.max_concurrent() <= 30
    rows = call_rows(database, task_id)
    assert {row["status"] for row in rows} == {"completed"}
    assert {row["trunk"] for row in rows} == {"id-main"}
    assert {row["disnumber"] for row in rows} == {"622150001000"}
    assert all(row["node_id"] is None for row in rows)
    assert record_counts(database) == {row["id"]: 1 for row in rows}


def task_progress_status(db: Database, task_id: str) -> str:
    with db.read() as conn:
        return task_progress(conn, None, task_id).status


async def test_calls_per_second_stay_within_max_cps(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    rate = 20.0
    sipp = await start_sipp(tmp_path / "sipp", "uas_dialer_answer.xml", calls=60)
    account_id, voice_id = seed_account(database)
    task_id = submit(database, account_id, voice_id, id_numbers(60))
    settings = settings_for(
        database_url, tmp_path, trunks=[sipp.trunk("id-main", max_channels=200, max_cps=rate)]
    )
    async with running_dialer(settings):
        await wait_for_in_thread(
            lambda: count_final(database, task_id) == 60, "60 final calls", limit=60
        )
    await sipp.finish()
    times = sipp.invite_times()
    assert len(times) == 60
    holds, worst, allowed = cps_bound_holds(times, rate)
    assert holds, f"{worst} INVITEs in one second, at most {allowed} allowed"
    # The pacer spaces INVITEs 1/rate apart: 60 of them span at least 59/rate seconds
    # (less a little for INVITEs the loop sent late after one sent on time).
    span = (times[-1] - times[0]).total_seconds()
    assert span >= (60 - 1 - 2) / rate


async def test_a_trunk_answering_503_fails_over_to_the_next(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    broken = await start_sipp(tmp_path / "broken", "uas_dialer_503.xml", calls=20)
    good = await start_sipp(tmp_path / "good", "uas_dialer_answer.xml", calls=20)
    account_id, voice_id = seed_account(database)
    numbers = id_numbers(20)
    task_id = submit(database, account_id, voice_id, numbers)
    settings = settings_for(
        database_url,
        tmp_path,
        trunks=[
            broken.trunk("id-broken", weight=10, max_cps=500),
            good.trunk("id-good", weight=1, max_cps=500),
        ],
    )
    async with running_dialer(settings):
        await wait_for_in_thread(
            lambda: count_final(database, task_id) == 20, "20 final calls", limit=60
        )
    await good.finish()
    await broken.stop()
    # Smooth weighted round robin sends 10 of every 11 first attempts to the heavy
    # trunk; every one of those fails over to the good trunk.
    first_on_broken = broken.invites()
    on_good = good.invites()
    assert len(on_good) == 20
    assert all(len(ids) == 1 for ids in on_good.values())
    assert len(first_on_broken) >= 15
    rows = call_rows(database, task_id)
    assert {row["status"] for row in rows} == {"completed"}
    assert {row["trunk"] for row in rows} == {"id-good"}
    assert record_counts(database) == {row["id"]: 1 for row in rows}


async def test_cancel_stops_dialing_and_lets_calls_in_progress_finish(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    sipp = await start_sipp(tmp_path / "sipp", "uas_dialer_answer.xml", calls=1000)
    account_id, voice_id = seed_account(database)
    task_id = submit(database, account_id, voice_id, id_numbers(200))
    settings = settings_for(
        database_url, tmp_path, trunks=[sipp.trunk("id-main", max_channels=3, max_cps=100)]
    )
    async with running_dialer(settings):
        await wait_for_in_thread(
            lambda: count_final(database, task_id) >= 6, "some calls done", limit=30
        )
        with database.write() as conn:
            canceled = cancel_task(
                conn, None, task_id, build_record=BUILD_RECORD, now=datetime.now(UTC)
            )
        assert canceled > 0
        await wait_for_in_thread(
            lambda: count_final(database, task_id) == 200, "every call ended", limit=30
        )
        await wait_for_in_thread(
            lambda: (
                task_progress_status(database, task_id) == "canceled"
                and task_ended(database, task_id)
            ),
            "task ended",
            limit=10,
        )
    rows = call_rows(database, task_id)
    statuses = [row["status"] for row in rows]
    assert statuses.count("canceled") == canceled
    dialed = [row for row in rows if row["status"] != "canceled"]
    assert {row["status"] for row in dialed} == {"completed"}
    assert record_counts(database) == {row["id"]: 1 for row in rows}
    await sipp.stop()
    invites = sipp.invites()
    assert sorted(invites) == sorted(row["number"].removeprefix("+") for row in dialed)


def task_ended(db: Database, task_id: str) -> bool:
    with db.read() as conn:
        return task_progress(conn, None, task_id).ended_at is not None
