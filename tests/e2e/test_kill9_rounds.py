"""Kill -9 the dialer while retry rounds are being queued and dialled, and restart it:
every busy number gets exactly one next round (none lost, none twice), a call whose fate
a kill left unknown (`interrupted`) gets none, and no round reaches the trunk twice.

The trunk is a SIPp UAS answering every INVITE 486; its message log says what really
reached it. The dialer runs on the system clock as `ivrcast dialer` does, so the
interval's passing is written into the queued rounds' `due_at`."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

sys.path.insert(0, str(Path(__file__).parent.parent / "interop" / "dialer"))
sys.path.insert(0, str(Path(__file__).parent))

from dialer_helpers import (
    HERE,
    call_rows,
    id_numbers,
    record_counts,
    seed_account,
    start_sipp,
)
from test_kill9 import CONFIG, start_dialer

from ivrcast.store.engine import Database
from ivrcast.store.tables import FINAL_STATES, calls
from ivrcast.store.tasks import NewTask, RetryPolicy, create_task
from waiting import wait_for

NUMBERS = 200


def submit_with_one_retry(db: Database, account_id: int, voice_id: int) -> str:
    now = datetime.now(UTC)
    with db.write() as conn:
        return create_task(
            conn,
            NewTask(
                account_id=account_id, nationcode="id", voice_id=voice_id,
                numbers=id_numbers(NUMBERS), userkey=False, todayonly=2, waittime=10,
                conntime=5, disnumber=None, chengshudu="", customuuid="", duplicates=0,
                invalid=0, local_day=now.date(),
                retry=RetryPolicy(retries=1, interval_minutes=1, on=("busy",)),
            ),
            now=now,
        )  # fmt: skip


def count(db: Database, task_id: str, *, round_number: int, final: bool | None = None) -> int:
    rows = [r for r in call_rows(db, task_id) if r["round"] == round_number]
    if final is not None:
        rows = [r for r in rows if (r["status"] in FINAL_STATES) == final]
    return len(rows)


def interval_passes(db: Database, task_id: str) -> None:
    """The interval has passed for every round waiting for it."""
    with db.write() as conn:
        conn.execute(
            update(calls)
            .where(calls.c.task_id == task_id, calls.c.status == "queued")
            .values(due_at=datetime.now(UTC) - timedelta(seconds=1))
        )


@pytest.mark.timeout(240)
async def test_kill_9_between_rounds_loses_no_round_and_dials_none_twice(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    scenario = tmp_path / "busy.xml"
    template = (HERE / "uas_busy_then_answer.xml.in").read_text()
    scenario.write_text(template.replace("@BUSY@", "1000000"))
    sipp = await start_sipp(tmp_path / "sipp", str(scenario), calls=100_000)
    account_id, voice_id = seed_account(database)
    task_id = submit_with_one_retry(database, account_id, voice_id)
    config = tmp_path / "ivrcast.toml"
    config.write_text(
        CONFIG.format(data_dir=tmp_path / "data", database_url=database_url, proxy=sipp.proxy)
    )
    log = tmp_path / "dialer.log"
    process = await start_dialer(config, log)
    try:
        # Killed while round 1 ends and round 2 is being queued.
        await wait_for(lambda: count(database, task_id, round_number=2) >= 40, "rounds", limit=60)
        process.kill()
        await process.wait()
        process = await start_dialer(config, log)
        await wait_for(
            lambda: count(database, task_id, round_number=1, final=True) == NUMBERS,
            "round 1 ended",
            limit=60,
        )
        interval_passes(database, task_id)
        # Killed again while round 2 is dialled.
        await wait_for(
            lambda: count(database, task_id, round_number=2, final=True) >= 40, "round 2", limit=60
        )
        process.kill()
        await process.wait()
        process = await start_dialer(config, log)
        await wait_for(
            lambda: all(r["status"] in FINAL_STATES for r in call_rows(database, task_id)),
            "every call ended",
            limit=60,
        )
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, log.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await sipp.stop()

    rows = call_rows(database, task_id)
    assert record_counts(database) == {r["id"]: 1 for r in rows}
    by_number: dict[str, dict[int, dict[str, object]]] = {}
    for row in rows:
        assert row["round"] not in by_number.setdefault(row["number"], {}), "a round twice"
        by_number[row["number"]][row["round"]] = row
    assert len(by_number) == NUMBERS
    for number, rounds in by_number.items():
        first = rounds[1]
        # Busy: its next round was queued with its end; interrupted: never dialled again.
        assert set(rounds) == ({1, 2} if first["status"] == "busy" else {1}), (number, rounds)
        assert first["final"] is (first["status"] != "busy")
        if 2 in rounds:
            assert rounds[2]["final"] is True
    invites = Counter({n: len(ids) for n, ids in sipp.invites().items()})
    for number, rounds in by_number.items():
        digits = number.removeprefix("+")
        dialled = sum(1 for r in rounds.values() if r["status"] == "busy")
        # Each round reached the trunk at most once; every busy one did.
        assert dialled <= invites[digits] <= len(rounds), (number, rounds, invites[digits])
