"""End-to-end dialing rate of the dialer beside the engine alone, in the same run.
`python bench/dialer.py [--numbers N] [--channels C] [--database-url URL]`; never asserts.

Both sides place the same N calls, each playing `HOLD` seconds of audio, to the same
SIPp UAS (answers, echoes RTP, like `bench/engine.py`), never more than C at once:
- *engine only*: this process calls `Engine.originate` N times behind a semaphore of C,
  as fast as the semaphore allows (no database, no scheduling);
- *dialer*: `python -m ivrcast.dialer` as its own process, trunk `max_channels = C` and a
  rate limit far above what is reached; the N numbers are inserted as one task (what
  PlayVoice does, measured on its own by `bench/ingest.py`) and the clock runs from that
  commit until every call row is final in the database (claim, pacing, INVITE, media,
  outcome, call record, outbox row).
Rate = N / elapsed. The ratio is the cost of scheduling and storage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

import engine as engine_bench  # bench/engine.py: its SIPp UAS and audio
from ivrcast.rtp import EncodedAudio
from ivrcast.rtp.g711 import encode_alaw, encode_ulaw
from ivrcast.sip import CallRequest, Engine, Trunk
from ivrcast.store.accounts import create_account
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head
from ivrcast.store.tables import FINAL_STATES, calls
from ivrcast.store.tasks import NewTask, create_task
from ivrcast.store.voices import insert_voice

HOLD = 1.0  # seconds of audio per call

CONFIG = """\
data_dir = "{data_dir}"
database_url = "{database_url}"
[dialer]
poll_interval = 0.05
claim_batch = 1000
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


def audio() -> EncodedAudio:
    samples = engine_bench.tone(HOLD)
    return EncodedAudio(pcmu=encode_ulaw(samples), pcma=encode_alaw(samples))


async def engine_only(port: int, numbers: int, channels: int) -> dict[str, float]:
    engine = Engine(no_rtp_timeout=None)
    await engine.start()
    trunk = Trunk(name="bench", host="127.0.0.1", port=port)
    voice = audio()
    gate = asyncio.Semaphore(channels)

    async def one(i: int) -> str:
        async with gate:
            outcome = await engine.originate(
                CallRequest(
                    call_uuid=f"e-{i}",
                    trunk=trunk,
                    dest=f"62812{i:07d}",
                    caller_id="622150001000",
                    audio=voice,
                    wait_time=30,
                    conn_time=HOLD + 5,
                )
            )
            return outcome.status

    start = time.monotonic()
    statuses = await asyncio.gather(*(one(i) for i in range(numbers)))
    elapsed = time.monotonic() - start
    await engine.stop()
    failed = sum(1 for s in statuses if s != "completed")
    return {"elapsed_s": elapsed, "calls_per_s": numbers / elapsed, "failed": failed}


def final_count(db: Database) -> int:
    with db.read() as conn:
        query = select(func.count()).select_from(calls).where(calls.c.status.in_(FINAL_STATES))
        return int(conn.execute(query).scalar_one())


def dialer_run(
    workdir: Path, database_url: str, port: int, numbers: int, channels: int
) -> dict[str, float]:
    db = Database(database_url)
    upgrade_to_head(db)
    now = datetime.now(UTC)
    voice = audio()
    with db.write() as conn:
        account = create_account(
            conn, appid=f"bench-{time.time_ns()}", accesskey_hash="0" * 64, now=now,
            callback_url="http://127.0.0.1:9/cb", max_concurrency=100_000,
        )  # fmt: skip
        voice_row = insert_voice(
            conn, account_id=account.id, name="bench", source_url=None, source_format="wav",
            source_bytes=len(voice.pcmu), duration_ms=int(HOLD * 1000), pcmu=voice.pcmu,
            pcma=voice.pcma, now=now,
        )  # fmt: skip
    config = workdir / "dialer.toml"
    config.write_text(
        CONFIG.format(
            data_dir=workdir / "data", database_url=database_url, port=port, channels=channels
        )
    )
    log = (workdir / "dialer.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVRCAST_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ivrcast.dialer", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    metrics = workdir / "data" / "metrics"
    deadline = time.monotonic() + 30
    while not any(metrics.glob("dialer-*.prom")) and time.monotonic() < deadline:
        time.sleep(0.05)  # bench only: the dialer writes its first snapshot once running
    before = final_count(db)
    with db.write() as conn:
        create_task(
            conn,
            NewTask(account_id=account.id, nationcode="id", voice_id=voice_row.id,
                    numbers=[f"+62812{i:07d}" for i in range(numbers)], userkey=False,
                    todayonly=2, waittime=30, conntime=math.ceil(HOLD + 5), disnumber=None,
                    chengshudu="", customuuid="", duplicates=0, invalid=0,
                    local_day=now.date()),
            now=datetime.now(UTC),
        )  # fmt: skip
    start = time.monotonic()
    while final_count(db) < before + numbers and time.monotonic() - start < 600:
        time.sleep(0.02)
    elapsed = time.monotonic() - start
    with db.read() as conn:
        rows = conn.execute(select(calls.c.status, func.count()).group_by(calls.c.status)).all()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    log.close()
    db.dispose()
    failed = sum(n for status, n in rows if status != "completed")
    return {"elapsed_s": elapsed, "calls_per_s": numbers / elapsed, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=3000)
    parser.add_argument("--channels", type=int, default=300)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        uas = engine_bench.start_uas(workdir, "uas", None, echo=True)
        try:
            ours = asyncio.run(engine_only(uas.port, args.numbers, args.channels))
            url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
            dialer = dialer_run(workdir, url, uas.port, args.numbers, args.channels)
        finally:
            uas.process.kill()
            uas.process.wait()
    ideal = args.channels / HOLD
    result = {
        "numbers": args.numbers,
        "channels": args.channels,
        "hold_s": HOLD,
        "database": "sqlite" if args.database_url is None else "postgresql",
        "ideal_calls_per_s": ideal,
        "engine_only": ours,
        "dialer": dialer,
        "ratio": dialer["calls_per_s"] / ours["calls_per_s"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
