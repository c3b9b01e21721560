"""End-to-end calls per second with 1, 2 and 4 dialer nodes on one PostgreSQL, and the
database's CPU per 1,000 calls. `python bench/fleet.py [--numbers N] [--channels C]
[--nodes 1,2,4] [--postgres ADMIN_URL]`; never asserts.

Each run: a fresh database, N numbers queued as one task, then `python -m ivrcast.dialer`
started K times (K nodes; the trunk's `max_channels = C` is shared between the live
nodes, so the fleet never exceeds C at once). The clock runs from the task's commit to
the last call row in a final state. The trunk is a SIPp UAS answering at once (the UAS
of `bench/engine.py`, echoing RTP), each call playing `HOLD` seconds of audio.

Database CPU is the PostgreSQL server's user+system time over the run (the postmaster,
its live backends, and the children it reaped), from /proc, so the server must run on
this machine. By default the bench starts a throwaway cluster of its own
(`tests/postgres_server.py`), so no other client's work is counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import Select, func, select

import engine as engine_bench  # bench/engine.py: its SIPp UAS and audio
from ivrcast.rtp.g711 import encode_alaw, encode_ulaw
from ivrcast.store.accounts import create_account
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head
from ivrcast.store.tables import FINAL_STATES, calls, nodes
from ivrcast.store.tasks import NewTask, create_task
from ivrcast.store.voices import insert_voice

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from postgres_server import throwaway_cluster

HOLD = 0.2  # seconds of audio per call: short, so the dialers' work per call dominates
TICKS = os.sysconf("SC_CLK_TCK")

CONFIG = """\
data_dir = "{data_dir}"
database_url = "{database_url}"
[logging]
level = "WARNING"
[dialer]
poll_interval = 0.05
claim_batch = 1000
heartbeat_seconds = 1.0
[countries.id]
window = "00:00-24:00"
[[trunks]]
name = "bench"
countries = ["id"]
proxy = "127.0.0.1:{port}"
callerids = ["622150001000"]
max_channels = {channels}
max_cps = 10000
"""


# -- the database server's CPU ---------------------------------------------------------


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rpartition(")")[2].split()  # fields from the state on (field 3)


def server_cpu_seconds(postmaster: int) -> float:
    """User+system seconds of the server: the postmaster, the children it has reaped,
    and its live children."""
    fields = _stat(postmaster)
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            child = _stat(int(entry.name))
            if int(child[1]) == postmaster:  # ppid
                ticks += int(child[11]) + int(child[12])
    return ticks / TICKS


def postmaster_pid(admin_url: str) -> int:
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(_stat(int(row[0]))[1])


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"ivrcast_fleet_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- one run ---------------------------------------------------------------------------


def count(db: Database, query: Select[int]) -> int:
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def run(
    workdir: Path, admin_url: str, port: int, numbers: int, channels: int, node_count: int
) -> dict[str, float]:
    with fresh_database(admin_url) as url:
        db = Database(url)
        upgrade_to_head(db)
        samples = engine_bench.tone(HOLD)
        pcmu, pcma = encode_ulaw(samples), encode_alaw(samples)
        now = datetime.now(UTC)
        with db.write() as conn:
            account = create_account(
                conn, appid="bench", accesskey_hash="0" * 64, now=now,
                callback_url="http://127.0.0.1:9/cb", max_concurrency=100_000,
            )  # fmt: skip
            voice = insert_voice(
                conn, account_id=account.id, name="bench", source_url=None,
                source_format="wav", source_bytes=len(pcmu), duration_ms=int(HOLD * 1000),
                pcmu=pcmu, pcma=pcma, now=now,
            )  # fmt: skip
        rundir = workdir / f"nodes-{node_count}"
        rundir.mkdir()
        config = rundir / "dialer.toml"
        config.write_text(
            CONFIG.format(data_dir=rundir / "data", database_url=url, port=port, channels=channels)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVRCAST_")}
        log = (rundir / "dialers.log").open("wb")
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "ivrcast.dialer", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            for _ in range(node_count)
        ]
        live = select(func.count()).select_from(nodes).where(nodes.c.stopped_at.is_(None))
        deadline = time.monotonic() + 60
        while count(db, live) < node_count and time.monotonic() < deadline:
            time.sleep(0.05)  # bench only: every node registered before the clock starts
        # Each node shares the trunk by the live nodes it saw at its last heartbeat.
        time.sleep(2.5)  # bench only: two heartbeats, so every node sees all the others
        postmaster = postmaster_pid(admin_url)
        cpu_before = server_cpu_seconds(postmaster)
        with db.write() as conn:
            create_task(
                conn,
                NewTask(account_id=account.id, nationcode="id", voice_id=voice.id,
                        numbers=[f"+62812{i:07d}" for i in range(numbers)], userkey=False,
                        todayonly=2, waittime=30, conntime=math.ceil(HOLD + 5),
                        disnumber=None, chengshudu="", customuuid="", duplicates=0,
                        invalid=0, local_day=now.date()),
                now=datetime.now(UTC),
            )  # fmt: skip
        start = time.monotonic()
        final = select(func.count()).select_from(calls).where(calls.c.status.in_(FINAL_STATES))
        while count(db, final) < numbers and time.monotonic() - start < 900:
            time.sleep(0.02)
        elapsed = time.monotonic() - start
        cpu = server_cpu_seconds(postmaster) - cpu_before
        with db.read() as conn:
            rows = conn.execute(select(calls.c.status, func.count()).group_by(calls.c.status))
            failed = sum(n for status, n in rows if status != "completed")
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
        log.close()
        db.dispose()
    return {
        "nodes": node_count,
        "elapsed_s": round(elapsed, 2),
        "calls_per_s": round(numbers / elapsed, 1),
        "failed": failed,
        "db_cpu_s": round(cpu, 2),
        "db_cpu_s_per_1000_calls": round(1000 * cpu / numbers, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=3000)
    parser.add_argument("--channels", type=int, default=300)
    parser.add_argument("--nodes", default="1,2,4")
    parser.add_argument(
        "--postgres", default=None, help="admin URL of a local server (default: a throwaway one)"
    )
    args = parser.parse_args()
    node_counts = [int(n) for n in args.nodes.split(",")]
    with contextlib.ExitStack() as stack:
        admin_url = args.postgres or stack.enter_context(throwaway_cluster())
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        uas = engine_bench.start_uas(workdir, "uas", None, echo=True)
        try:
            results = [
                run(workdir, admin_url, uas.port, args.numbers, args.channels, n)
                for n in node_counts
            ]
        finally:
            uas.process.kill()
            uas.process.wait()
    base = results[0]["calls_per_s"]
    for result in results:
        result["ratio_to_first"] = round(result["calls_per_s"] / base, 2)
    print(
        json.dumps(
            {
                "numbers": args.numbers,
                "channels": args.channels,
                "hold_s": HOLD,
                "cpus": os.cpu_count(),
                "runs": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
