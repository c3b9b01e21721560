"""PlayVoice ingest: 5000-number requests against a running server, beside bare inserts.

Starts `ivrcast serve` (API only) on a fresh SQLite data folder (or PostgreSQL with
`--database postgresql`), creates an account and a voice with the CLI, then sends
`--requests` PlayVoice requests of 5000 distinct valid numbers each, one at a time, as
form-data, the way the seed's clients do. Interleaved with them, the baseline writes the
same 5000 call rows (ids and values made before its clock starts) with one bare DB-API
`executemany` in one transaction into a database of the same kind and schema (a
migrated copy), so the machine's noise hits both alike. Reports latency p50/p95,
numbers per second, and the ratio to the baseline.

With `--dnc N` (e.g. 1000000), a second phase in the same run: a second account gets N
other numbers on its do-not-call list with `ivrcast dnc import` (one streamed CSV), and
the same 5000-number requests go, alternately, to it (every number looked up in a list
of N) and to the first account (an empty list), so both meet the same database and the
same noise. The two p50s are reported with their ratio (the aim: within 1.25x).

Run: `.venv/bin/python bench/ingest.py [--requests 40] [--database sqlite|postgresql]
[--dnc 1000000]`.
A measurement, not a test: it never asserts.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from ivrcast.demo_account import demo_tone
from ivrcast.store.engine import Database
from ivrcast.store.ids import time_ordered_uuids
from ivrcast.store.migrate import upgrade_to_head

NUMBERS_PER_REQUEST = 5000
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def indonesian_mobiles(batch: int) -> list[str]:
    # 0812 + 8 digits: valid Telkomsel mobiles; each batch gets its own range.
    return [f"0812{batch:03d}{i:05d}" for i in range(NUMBERS_PER_REQUEST)]


def call_uuids(numbers: list[str]) -> list[str]:
    """The ids the server would write (UUIDv7), made before the baseline's clock starts."""
    return time_ordered_uuids(len(numbers), datetime.now(UTC))


def start_server(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    log = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "ivrcast", "serve", "--no-dialer", "--port", "0"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"listening on (http://\S+)", log.read_text())
        if found:
            return process, found.group(1)
        time.sleep(0.05)
    process.kill()
    raise SystemExit("server did not start:\n" + log.read_text())


def cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "ivrcast", *args], env=env, check=True, capture_output=True
    )


def baseline_sqlite(path: Path) -> Callable[[list[str], str], float]:
    import sqlite3

    upgrade_to_head(Database(f"sqlite:///{path}"))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    conn.execute(
        "INSERT INTO accounts (appid, accesskey_hash, max_concurrency, disabled, "
        "created_at) VALUES ('b', 'x', 1, 0, ?)",
        (now,),
    )
    conn.execute(
        "INSERT INTO voices (account_id, name, source_format, source_bytes, "
        "duration_ms, pcmu, pcma, created_at) VALUES (1, 'v', 'wav', 0, 0, x'', x'', ?)",
        (now,),
    )

    def insert(numbers: list[str], task_id: str) -> float:
        rows = [
            (u, task_id, "+62" + n[1:], n, now)
            for u, n in zip(call_uuids(numbers), numbers, strict=True)
        ]
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO tasks (id, account_id, nationcode, voice_id, userkey, todayonly, "
            "waittime, conntime, chengshudu, customuuid, status, total, duplicates, invalid, "
            "invalid_entries, local_day, created_at) VALUES (?, 1, 'id', 1, 0, 1, 30, 30, '', "
            "'', 'active', ?, 0, 0, '[]', '2026-11-26', ?)",
            (task_id, len(numbers), now),
        )
        conn.executemany(
            "INSERT INTO calls (uuid, task_id, account_id, nationcode, number, "
            "submitted_number, status, round, queued_at) "
            "VALUES (?, ?, 1, 'id', ?, ?, 'queued', 1, ?)",
            rows,
        )
        conn.execute("COMMIT")
        return time.perf_counter() - started

    return insert


def baseline_postgres(url: str) -> Callable[[list[str], str], float]:
    upgrade_to_head(Database(url))
    conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)
    now = datetime.now(UTC)
    conn.execute(
        "INSERT INTO accounts (appid, accesskey_hash, max_concurrency, disabled, "
        "created_at) VALUES ('b', 'x', 1, false, %s)",
        (now,),
    )
    voice_id = conn.execute(
        "INSERT INTO voices (account_id, name, source_format, source_bytes, duration_ms, pcmu, "
        "pcma, created_at) SELECT id, 'v', 'wav', 0, 0, '', '', %s FROM accounts RETURNING id",
        (now,),
    ).fetchone()
    assert voice_id is not None

    def insert(numbers: list[str], task_id: str) -> float:
        rows = [
            (u, task_id, "+62" + n[1:], n, now)
            for u, n in zip(call_uuids(numbers), numbers, strict=True)
        ]
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO tasks (id, account_id, nationcode, voice_id, userkey, todayonly, "
                "waittime, conntime, chengshudu, customuuid, status, total, duplicates, invalid, "
                "invalid_entries, local_day, created_at) SELECT %s, id, 'id', %s, false, 1, 30, "
                "30, '', '', 'active', %s, 0, 0, '[]', '2026-11-26', %s FROM accounts",
                (task_id, voice_id[0], len(numbers), now),
            )
            cursor.executemany(
                "INSERT INTO calls (uuid, task_id, account_id, nationcode, number, "
                "submitted_number, status, round, queued_at) "
                "SELECT %s, %s, id, 'id', %s, %s, 'queued', 1, %s FROM accounts",
                rows,
            )
        return time.perf_counter() - started

    return insert


def create_pg_database(name: str) -> str:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def play(client: httpx.Client, numbers: list[str], appid: str = "bench") -> float:
    """One PlayVoice request of `numbers`; its latency in seconds."""
    form = {
        "service": "App.Sip_Call.PlayVoice",
        "appid": appid,
        "accesskey": "bench-key",
        "nationcode": "id",
        "destnumber": ",".join(numbers),
        "voicetype": "1",
        "voicefile": "welcome",
    }
    started = time.perf_counter()
    response = client.post("/api/yunhu", data=form, files={"_": (None, "")})
    elapsed = time.perf_counter() - started
    body = response.json()
    assert body["data"]["accepted"] == NUMBERS_PER_REQUEST, body
    return elapsed


def fill_dnc(env: dict[str, str], workdir: Path, count: int) -> float:
    """`count` numbers none of the requests sends (0813…) on account `listed`'s list;
    returns the seconds the import took."""
    path = workdir / "dnc.csv"
    with path.open("w") as out:
        out.write("number\n")
        out.writelines(f"0813{i:08d}\n" for i in range(count))
    started = time.perf_counter()
    cli(env, "dnc", "import", str(path), "--nation", "id", "--appid", "listed")
    return time.perf_counter() - started


def main(requests: int, database: str, dnc: int = 0) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ivrcast-bench-"))
    env = {**os.environ, "IVRCAST_DATA_DIR": str(workdir / "data")}
    pg_names: list[str] = []
    if database == "postgresql":
        pg_names = [f"ivrcast_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        env["IVRCAST_DATABASE_URL"] = create_pg_database(pg_names[0])
        baseline = baseline_postgres(create_pg_database(pg_names[1]))
    else:
        baseline = baseline_sqlite(workdir / "baseline.db")
    cli(env, "account", "create", "--appid", "bench", "--accesskey", "bench-key")
    voice = workdir / "voice.wav"
    voice.write_bytes(demo_tone())
    cli(env, "voice", "upload", "--appid", "bench", "welcome", str(voice))
    if dnc:
        cli(env, "account", "create", "--appid", "listed", "--accesskey", "bench-key")
        cli(env, "voice", "upload", "--appid", "listed", "welcome", str(voice))
    process, url = start_server(workdir / "data", env)
    latencies: list[float] = []
    bare: list[float] = []
    listed: list[float] = []
    unlisted: list[float] = []
    import_seconds = 0.0
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            for batch in range(requests + 3):
                numbers = indonesian_mobiles(batch)
                elapsed = play(client, numbers)
                base = baseline(numbers, uuid.uuid4().hex)
                if batch >= 3:  # the first requests warm caches and the connection pool
                    latencies.append(elapsed)
                    bare.append(base)
            if dnc:
                import_seconds = fill_dnc(env, workdir, dnc)
                for batch in range(requests + 3):
                    numbers = indonesian_mobiles(batch)
                    # Which goes first alternates, so neither gains from the other's work.
                    if batch % 2:
                        with_list = play(client, numbers, "listed")
                        without = play(client, numbers, "bench")
                    else:
                        without = play(client, numbers, "bench")
                        with_list = play(client, numbers, "listed")
                    if batch >= 3:
                        listed.append(with_list)
                        unlisted.append(without)
    finally:
        process.terminate()
        process.wait()
        for name in pg_names:
            drop_pg_database(name)
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    base50 = statistics.median(bare)
    print(f"database: {database}; {requests} requests of {NUMBERS_PER_REQUEST} numbers")
    print(f"PlayVoice latency  p50 {p50 * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms")
    print(f"numbers per second (p50) {NUMBERS_PER_REQUEST / p50:,.0f}")
    print(f"bare executemany   p50 {base50 * 1000:6.1f} ms")
    print(f"cost ratio (p50 request / p50 bare insert) {p50 / base50:.2f}x")
    if dnc:
        listed50, unlisted50 = percentile(listed, 0.5), percentile(unlisted, 0.5)
        print(f"do-not-call list of {dnc:,} numbers imported in {import_seconds:.1f} s")
        print(f"PlayVoice, list of {dnc:,}  p50 {listed50 * 1000:6.1f} ms")
        print(f"PlayVoice, empty list  p50 {unlisted50 * 1000:6.1f} ms (interleaved)")
        print(f"ratio (p50 with the list / p50 empty list) {listed50 / unlisted50:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--dnc", type=int, default=0, help="numbers on the do-not-call list")
    arguments = parser.parse_args()
    main(arguments.requests, arguments.database, arguments.dnc)
