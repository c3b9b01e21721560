"""Callback delivery: final state to receipt, and throughput, beside bare httpx posts.

Three processes on loopback, as in a deployment: a *producer* writes final states (call
row + record + outbox row, one `finish_calls` transaction per 50 ms batch, paced at
`--rate` records/s for `--seconds`), the *sender* (`CallbackSender.run`, in this process)
delivers them, and a *receiver* (uvicorn, a minimal ASGI app) stamps each arrival with
the wall clock. Measured, on each database:

* latency: receipt time minus the producer's commit time, per record (p50/p99/max);
* sustained rate: a backlog of `--backlog` records already pending when the sender
  starts, drained at what rate (deliveries/s, each acknowledged and written down);
* baseline, in the same run and to the same receiver: the same payloads POSTed with a bare
  `httpx.AsyncClient` at the same concurrency per host (8), paced at `--rate` (request
  latency p50/p99) and as fast as it goes (posts/s);
* CPU per record of this process (every thread: the sender's database work included)
  while draining, and of the bare client: on a machine shared with other work, the
  rates move with the load and this moves much less.

Run: `.venv/bin/python bench/callbacks.py [--rate 200] [--seconds 20] [--backlog 5000]
[--database sqlite|postgresql|both]`. A measurement, not a test: it never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
from sqlalchemy import select

from ivrcast.callbacks.record import build_call_record
from ivrcast.callbacks.sender import CallbackSender
from ivrcast.config import Settings
from ivrcast.credentials import seal_secret
from ivrcast.store.accounts import create_account
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head
from ivrcast.store.tables import call_records, calls
from ivrcast.store.tasks import NewTask, create_task
from ivrcast.store.transitions import CallEnd, finish_calls, finish_calls_where
from ivrcast.store.voices import insert_voice

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PER_HOST = 8
BENCH_KEY = b"bench-server-key"
BATCHES_PER_SECOND = 20
build_record = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))


def final(now: datetime) -> CallEnd:
    """How every benchmark call ends: answered and completed at `now`."""
    return CallEnd(
        status="completed",
        invited_at=now,
        answered_at=now,
        sip_code=200,
        sip_reason="OK",
        hangup_cause=10001,
        hangup_direction=10040,
        disnumber="622150001000",
        trunk="id-main",
    )


# --- the receiver (its own process) --------------------------------------------------

_receipts: list[tuple[str, float]] = []


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST: stamp and acknowledge; GET /count; GET /receipts returns and forgets them."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "POST":
        _receipts.append((json.loads(body)["uuid"], time.time()))
        answer = b"1"
    elif scope["path"] == "/count":
        answer = str(len(_receipts)).encode()
    else:
        answer = json.dumps(_receipts).encode()
        _receipts.clear()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer})


def serve_receiver(port: int) -> None:
    import uvicorn

    uvicorn.run(receiver_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the producer (its own process) --------------------------------------------------


def produce(url: str, task_id: str, rate: int) -> None:
    """Finish the task's calls at `rate` per second; print (uuid, commit time) pairs."""
    db = Database(url)
    with db.read() as conn:
        rows = conn.execute(
            select(calls.c.id, calls.c.uuid).where(calls.c.task_id == task_id).order_by(calls.c.id)
        ).all()
    size = max(1, rate // BATCHES_PER_SECOND)
    written: list[tuple[str, float]] = []
    start = time.time()
    for index in range(0, len(rows), size):
        chunk = rows[index : index + size]
        delay = start + index / rate - time.time()
        if delay > 0:
            time.sleep(delay)  # pacing the load, not waiting for a condition
        now = datetime.now(UTC)
        with db.write() as conn:
            finish_calls(
                conn,
                dict.fromkeys([row.id for row in chunk], final(now)),
                from_states=("queued",),
                build_record=build_record,
                now=now,
            )
        committed = time.time()
        written.extend((row.uuid, committed) for row in chunk)
    db.dispose()
    sys.stdout.write(json.dumps(written))


# --- the benchmark -------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def make_task(db: Database, account_id: int, voice_id: int, count: int, offset: int) -> str:
    numbers = [f"+62812{offset + i:08d}" for i in range(count)]
    with db.write() as conn:
        return create_task(
            conn,
            NewTask(
                account_id=account_id,
                nationcode="id",
                voice_id=voice_id,
                numbers=numbers,
                userkey=False,
                todayonly=2,
                waittime=30,
                conntime=60,
                disnumber=None,
                chengshudu="",
                customuuid="",
                duplicates=0,
                invalid=0,
                local_day=date.today(),
            ),
            now=datetime.now(UTC),
        )


async def start_receiver() -> tuple[asyncio.subprocess.Process, str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-receiver", str(port)
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(trust_env=False) as client:
        for _ in range(300):
            try:
                await client.get(f"{base}/count")
                return process, base
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the receiver did not start")


async def receipts(base: str) -> list[tuple[str, float]]:
    async with httpx.AsyncClient(trust_env=False) as client:
        return [tuple(pair) for pair in (await client.get(f"{base}/receipts")).json()]


async def wait_count(base: str, count: int, within: float = 300) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        deadline = time.monotonic() + within
        while int((await client.get(f"{base}/count")).text) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {count} deliveries after {within} s")
            await asyncio.sleep(0.02)


async def with_sender(settings: Settings, url: str, body: Callable[[], Awaitable[None]]) -> None:
    db = Database(url)
    stop = asyncio.Event()
    task = asyncio.create_task(CallbackSender(settings, db, key=BENCH_KEY).run(stop))
    try:
        await body()
    finally:
        stop.set()
        await task
        db.dispose()


async def bare_httpx(
    base: str, payloads: list[bytes], rate: float | None
) -> tuple[list[float], float]:
    """POST every payload, `PER_HOST` at a time (paced at `rate` if given); returns the
    per-request latencies and the elapsed seconds."""
    limits = httpx.Limits(max_connections=PER_HOST, max_keepalive_connections=PER_HOST)
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    async with httpx.AsyncClient(trust_env=False, limits=limits) as client:

        async def worker() -> None:
            while True:
                body = await queue.get()
                started = time.perf_counter()
                response = await client.post(
                    f"{base}/cb", content=body, headers={"Content-Type": "application/json"}
                )
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)
                queue.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(PER_HOST)]
        start = time.perf_counter()
        for index, body in enumerate(payloads):
            if rate is not None:
                delay = start + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            queue.put_nowait(body)
        await queue.join()
        elapsed = time.perf_counter() - start
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return latencies, elapsed


async def measure(url: str, rate: int, seconds: int, backlog: int) -> dict[str, Any]:
    db = Database(url)
    upgrade_to_head(db)
    process, base = await start_receiver()
    now = datetime.now(UTC)
    with db.write() as conn:
        account = create_account(
            conn,
            appid="bench",
            accesskey_hash="0" * 64,
            callback_url=f"{base}/cb",
            # Sealed as `ivrcast account` stores it: each attempt pays for opening it.
            callback_secret=seal_secret(BENCH_KEY, "bench-secret"),
            now=now,
        )
        voice = insert_voice(
            conn,
            account_id=account.id,
            name="bench",
            source_url=None,
            source_format="wav",
            source_bytes=1,
            duration_ms=20,
            pcmu=b"\xff" * 160,
            pcma=b"\xd5" * 160,
            now=now,
        )
    settings = Settings.model_validate({"security": {"allow_private_urls": True}})
    result: dict[str, Any] = {}
    try:
        # 1. Latency at a steady rate.
        paced = make_task(db, account.id, voice.id, rate * seconds, 0)
        produced: list[bytes] = []

        async def paced_run() -> None:
            producer = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--produce",
                url,
                paced,
                str(rate),
                stdout=asyncio.subprocess.PIPE,
            )
            produced.append((await producer.communicate())[0])
            await wait_count(base, rate * seconds)

        await with_sender(settings, url, paced_run)
        written = dict(json.loads(produced[0]))
        arrived = await receipts(base)
        first: dict[str, float] = {}
        for call_uuid, at in arrived:
            first.setdefault(call_uuid, at)
        latencies = [first[u] - written[u] for u in written]
        span = max(first.values()) - min(written.values())
        result["latency"] = latencies
        result["paced_rate"] = len(first) / span
        result["duplicates"] = sum(n - 1 for n in Counter(u for u, _ in arrived).values())

        # 2. A backlog, drained as fast as the sender goes.
        drained = make_task(db, account.id, voice.id, backlog, 10_000_000)
        with db.write() as conn:
            finish_calls_where(
                conn,
                calls.c.task_id == drained,
                final(now),
                from_states=("queued",),
                build_record=build_record,
                now=datetime.now(UTC),
            )
        started, cpu = time.time(), time.process_time()
        await with_sender(settings, url, lambda: wait_count(base, backlog))
        result["backlog_cpu"] = (time.process_time() - cpu) / backlog
        arrived = await receipts(base)
        result["backlog_rate"] = backlog / (max(at for _, at in arrived) - started)

        # 3. The same payloads with bare httpx, paced, then as fast as it goes.
        with db.read() as conn:
            payloads = [
                payload.encode()
                for payload in conn.scalars(
                    select(call_records.c.payload).where(call_records.c.task_id == drained)
                )
            ]
        bare, _elapsed = await bare_httpx(base, payloads[: rate * seconds], rate)
        result["bare_latency"] = bare
        await receipts(base)
        cpu = time.process_time()
        _latencies, elapsed = await bare_httpx(base, payloads, None)
        result["bare_cpu"] = (time.process_time() - cpu) / len(payloads)
        result["bare_rate"] = len(payloads) / elapsed
        await receipts(base)
    finally:
        process.terminate()
        await process.wait()
        db.dispose()
    return result


def report(name: str, result: dict[str, Any], rate: int) -> None:
    ms = 1000.0
    latency, bare = result["latency"], result["bare_latency"]
    print(f"\n## {name}")
    print("| measurement | ivrcast sender | bare httpx | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        ours, theirs = percentile(latency, fraction), percentile(bare, fraction)
        print(
            f"| latency {label} at {rate}/s | {ours * ms:.1f} ms | {theirs * ms:.1f} ms "
            f"| {ours / theirs:.1f}x |"
        )
    print(f"| latency max at {rate}/s | {max(latency) * ms:.1f} ms | {max(bare) * ms:.1f} ms | |")
    print(f"| delivered rate while paced | {result['paced_rate']:.0f}/s | | |")
    print(
        f"| sustained, draining a backlog | {result['backlog_rate']:.0f}/s "
        f"| {result['bare_rate']:.0f}/s | {result['backlog_rate'] / result['bare_rate']:.2f}x |"
    )
    ours, theirs = result["backlog_cpu"], result["bare_cpu"]
    print(
        f"| CPU per record, draining | {ours * ms:.3f} ms | {theirs * ms:.3f} ms "
        f"| {ours / theirs:.2f}x |"
    )
    print(f"| duplicates | {result['duplicates']} | | |")
    print(f"(mean sender latency {statistics.fmean(latency) * ms:.1f} ms, {len(latency)} records)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    engines = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    for engine in engines:
        if engine == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite:///{folder}/ivrcast.db"
                result = asyncio.run(measure(url, args.rate, args.seconds, args.backlog))
        else:
            name = f"ivrcast_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                url = f"{POSTGRES_ADMIN.rsplit('/', 1)[0]}/{name}"
                result = asyncio.run(measure(url, args.rate, args.seconds, args.backlog))
            finally:
                with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        report(engine, result, args.rate)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-receiver"]:
        serve_receiver(int(sys.argv[2]))
    elif sys.argv[1:2] == ["--produce"]:
        produce(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
