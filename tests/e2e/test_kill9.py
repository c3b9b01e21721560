"""Kill -9 the dialer process mid-task, again and again, and restart it: no number gets a
second INVITE, and every number ends in exactly one final state with one record.

The trunk is a SIPp UAS; its message log says what really reached the carrier. Calls a
killed dialer held end `interrupted` when the next one starts (never redialed)."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "interop" / "dialer"))

from dialer_helpers import (
    call_rows,
    count_final,
    id_numbers,
    record_counts,
    seed_account,
    start_sipp,
    submit,
)

from ivrcast.store.engine import Database
from waiting import wait_for_in_thread

NUMBERS = 300
KILLS = 3

CONFIG = """\
data_dir = "{data_dir}"
database_url = "{database_url}"

[dialer]
poll_interval = 0.05
heartbeat_seconds = 1.0
shutdown_grace = 5.0

[countries.id]
window = "00:00-24:00"

[[trunks]]
name = "id-sipp"
countries = ["id"]
proxy = "{proxy}"
callerids = ["622150001000"]
max_channels = 20
max_cps = 200
"""


async def start_dialer(config: Path, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVRCAST_")}
    with log.open("ab") as output:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivrcast.dialer", "--config", str(config),
            env=env, stdout=output, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip


@pytest.mark.timeout(240)
async def test_kill_9_mid_task_never_dials_a_number_twice(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    sipp = await start_sipp(tmp_path / "sipp", "uas_dialer_answer.xml", calls=100_000)
    account_id, voice_id = seed_account(database)
    numbers = id_numbers(NUMBERS)
    task_id = submit(database, account_id, voice_id, numbers)
    config = tmp_path / "ivrcast.toml"
    config.write_text(
        CONFIG.format(data_dir=tmp_path / "data", database_url=database_url, proxy=sipp.proxy)
    )
    log = tmp_path / "dialer.log"

    def progressed(since: int) -> bool:
        """Some calls done since a start, more in flight."""
        return count_final(database, task_id) >= since + 30 and any(
            r["status"] == "answered" for r in call_rows(database, task_id)
        )

    try:
        for _ in range(KILLS):
            before = count_final(database, task_id)
            process = await start_dialer(config, log)
            # Kill it while it is busy: some calls done since this start, more in flight.
            await wait_for_in_thread(
                functools.partial(progressed, before),
                "progress after a restart",
                limit=60,
            )
            process.kill()
            await process.wait()
        process = await start_dialer(config, log)
        await wait_for_in_thread(
            lambda: count_final(database, task_id) == NUMBERS, "every call ended", limit=90
        )
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, log.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await sipp.stop()

    rows = call_rows(database, task_id)
    invites = sipp.invites()
    twice = {number: ids for number, ids in invites.items() if len(ids) > 1}
    assert not twice, f"numbers INVITEd more than once: {twice}"
    assert set(invites) <= {n.removeprefix("+") for n in numbers}
    # Every call has exactly one final state and exactly one record.
    assert len(rows) == NUMBERS
    assert all(r["status"] in ("completed", "interrupted") for r in rows)
    assert record_counts(database) == {r["id"]: 1 for r in rows}
    interrupted = [r for r in rows if r["status"] == "interrupted"]
    assert interrupted, "a kill mid-task leaves calls in progress"
    # Each completed call reached the trunk once; interrupted ones at most once.
    completed = {r["number"].removeprefix("+") for r in rows if r["status"] == "completed"}
    assert completed <= set(invites)
    assert all(r["node_id"] is None for r in rows)
