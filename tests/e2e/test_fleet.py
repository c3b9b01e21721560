"""A fleet on one PostgreSQL: two API processes and three dialer nodes share one SIPp
trunk. One dialer node and one API process are killed with SIGKILL mid-task.

What must hold: every number ends in one final state with one record; the trunk saw no
number twice; every record reached the receiver (a second time only when its first
delivery was in flight in the killed API process); and all three nodes dialed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from e2e_server import CallbackReceiver

from ivrcast.demo_account import demo_tone
from ivrcast.store.engine import Database
from service_process import IVRCAST, RunningServer, start_server, stop_server

sys.path.insert(0, str(Path(__file__).parent.parent / "interop" / "dialer"))

from dialer_helpers import call_rows, count_final, record_counts, start_sipp

from waiting import wait_for

# 2,000 numbers: on a 2-core machine shared with the test run, the whole test takes
# about a minute (IVRCAST_FLEET_NUMBERS changes it).
NUMBERS = int(os.environ.get("IVRCAST_FLEET_NUMBERS", "2000"))
DIALERS = 3

CONFIG = """\
data_dir = "{data_dir}"
database_url = "{database_url}"

[security]
allow_private_urls = true
secret_key = "fleet-test-server-key"

[callbacks]
# Long enough that no delivery to the loopback receiver times out and is sent again, short
# enough that the killed API process's leases (2 x 5 + 30 s) end within the test.
timeout_seconds = 5
poll_seconds = 0.05

[dialer]
poll_interval = 0.05
heartbeat_seconds = 0.5
shutdown_grace = 5.0

[countries.id]
window = "00:00-24:00"

[[trunks]]
name = "id-sipp"
countries = ["id"]
proxy = "{proxy}"
callerids = ["622150001000"]
max_channels = 150
max_cps = 300
"""


def numbers(start: int, count: int) -> list[str]:
    return [f"0812{n:08d}" for n in range(start, start + count)]


def play_voice(server: RunningServer, destnumbers: list[str]) -> str:
    answer = httpx.post(
        server.url + "/api/yunhu",
        data={
            "service": "App.Sip_Call.PlayVoice",
            "appid": "fleet",
            "accesskey": "fleet-key",
            "nationcode": "id",
            "voicetype": "1",
            "voicefile": "beep",
            "destnumber": ",".join(destnumbers),
            "userkey": "0",
            "todayonly": "2",
        },
        timeout=60,
    ).json()
    assert answer["code"] == 200, answer
    assert answer["data"]["accepted"] == len(destnumbers)
    task_id: str = answer["data"]["taskid"]
    return task_id


async def start_dialer(config: Path, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVRCAST_")}
    with log.open("ab") as output:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivrcast.dialer", "--config", str(config),
            env=env, stdout=output, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip


def claims_logged(log: Path) -> Counter[str]:
    """How many `dialer.claimed` lines a dialer's log holds, by the node they name."""
    nodes: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if "event=dialer.claimed" in line:
            nodes[line.split(" node=", 1)[1].split()[0]] += 1
    return nodes


def kill_server(server: RunningServer) -> None:
    os.killpg(os.getpgid(server.process.pid), signal.SIGKILL)
    server.process.wait()


@pytest.mark.postgres
@pytest.mark.timeout(280)
async def test_a_fleet_survives_losing_a_dialer_node_and_an_api_process(
    postgres_url: str, tmp_path: Path, callback_receiver: CallbackReceiver
) -> None:
    database = Database(postgres_url)
    sipp = await start_sipp(tmp_path / "sipp", "uas_dialer_answer.xml", calls=1_000_000)
    data = tmp_path / "data"
    config = tmp_path / "ivrcast.toml"
    config.write_text(CONFIG.format(data_dir=data, database_url=postgres_url, proxy=sipp.proxy))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVRCAST_")}
    env["IVRCAST_CONFIG"] = str(config)
    wav = tmp_path / "beep.wav"
    wav.write_bytes(demo_tone(0.2))
    for args in (
        ["account", "create", "--appid", "fleet", "--accesskey", "fleet-key",
         "--callback-url", callback_receiver.url, "--callback-secret", "s3cret",
         "--max-concurrency", "1000"],
        ["voice", "upload", "beep", str(wav), "--appid", "fleet"],
    ):  # fmt: skip
        done = await asyncio.to_thread(
            subprocess.run, [*IVRCAST, *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    apis = [
        await asyncio.to_thread(start_server, data, "--no-dialer", config=config) for _ in range(2)
    ]
    logs = [tmp_path / f"dialer-{n}.log" for n in range(DIALERS)]
    dialers = [await start_dialer(config, log) for log in logs]
    try:
        half = NUMBERS // 2
        task_ids = await asyncio.gather(
            asyncio.to_thread(play_voice, apis[0], numbers(0, half)),
            asyncio.to_thread(play_voice, apis[1], numbers(half, NUMBERS - half)),
        )
        # Mid-task: a fifth of the calls ended, others in flight on every node.
        await wait_for(
            lambda: (
                count_final(database) >= NUMBERS // 5
                and len(callback_receiver.received) >= NUMBERS // 10
            ),
            "a fifth of the calls to end",
            limit=120,
        )
        dialers[0].kill()
        await dialers[0].wait()
        await asyncio.to_thread(kill_server, apis[1])
        killed_at = time.monotonic()  # nothing the killed API process sent arrives later
        await wait_for(lambda: count_final(database) == NUMBERS, "every call to end", limit=180)
        await wait_for(
            lambda: (
                {r["uuid"] for r in callback_receiver.records()}
                >= {r["uuid"] for r in call_rows(database)}
            ),
            "every record to be delivered",
            limit=120,
        )
        for process in dialers[1:]:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        for process in dialers:
            if process.returncode is None:
                process.kill()
                await process.wait()
        for server in apis:
            if server.process.poll() is None:
                await asyncio.to_thread(stop_server, server)
        await sipp.stop()

    rows = call_rows(database)
    counts = record_counts(database)
    database.dispose()
    assert len(rows) == NUMBERS
    assert {r["task_id"] for r in rows} == set(task_ids)
    # One final state and one record per number.
    assert all(r["status"] in ("completed", "interrupted") for r in rows)
    assert counts == {r["id"]: 1 for r in rows}
    assert any(r["status"] == "interrupted" for r in rows), "the kill left calls in flight"
    # The trunk saw no number twice.
    invites = sipp.invites()
    twice = {number: ids for number, ids in invites.items() if len(ids) > 1}
    assert not twice, f"numbers INVITEd more than once: {twice}"
    # Every record delivered; a second copy only of one whose first left before the kill
    # (in flight in the killed API process, whose lease then ran out).
    arrivals: dict[str, list[float]] = {}
    for at, record in callback_receiver.received:
        arrivals.setdefault(record["uuid"], []).append(at)
    assert set(arrivals) == {r["uuid"] for r in rows}
    repeated = {uuid: times for uuid, times in arrivals.items() if len(times) > 1}
    assert all(len(times) == 2 and times[0] < killed_at for times in repeated.values()), repeated
    # The work was spread over the three nodes: each call names the node that dialed it,
    # and each node's log names the calls it claimed. The killed node may have committed
    # a claim and died before logging all of it.
    by_node = Counter(r["dialed_by"] for r in rows)
    assert len(by_node) == DIALERS, by_node
    assert None not in by_node
    logged = [claims_logged(log) for log in logs]
    assert all(len(node) == 1 for node in logged), logged
    killed, *survivors = (node.most_common(1)[0] for node in logged)
    assert all(by_node[node] == count for node, count in survivors), (survivors, by_node)
    assert 0 < killed[1] <= by_node[killed[0]], (killed, by_node)
