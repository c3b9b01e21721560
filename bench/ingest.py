"""PlayVoice ingest: 5000-number requests against running servers, beside bare inserts.

Starts `ivrcast serve` (API only) on a fresh SQLite data folder and another on a fresh
PostgreSQL database (`--database` picks one or both), creates an account and a voice with
the CLI, then sends `--requests` PlayVoice requests of 5000 distinct valid numbers each,
one at a time, as form-data, the way the seed's clients do. Interleaved with them, the
baselines write the same task and 5000 call rows (ids and values made before their clock
starts) in one transaction into a migrated database of the same kind: with one bare
DB-API `executemany` on each store, and on PostgreSQL also with one bare `COPY`. So the
machine's noise hits all alike. Reports latency p50/p95, numbers per second, and the
ratios between the stores and to the baselines, all from the same run.

With `--dnc N` (e.g. 1000000), a second phase in the same run: on each store a second
account gets N other numbers on its do-not-call list with `ivrcast dnc import` (one
streamed CSV), and the same 5000-number requests go, alternately, to it (every number
looked up in a list of N) and to the first account (an empty list), so both meet the same
database and the same noise. The two p50s are reported with their ratio (the aim: within
1.25x).

Run: `.venv/bin/python bench/ingest.py [--requests 40] [--database sqlite|postgresql|both]
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


COPY_TYPES = [
    "varchar", "varchar", "bigint", "varchar", "varchar", "varchar", "varchar", "smallint",
    "timestamptz",
]  # fmt: skip


def baseline_postgres_copy(url: str) -> Callable[[list[str], str], float]:
    """The same transaction as `baseline_postgres`, the calls written by one binary COPY."""
    upgrade_to_head(Database(url))
    conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)
    now = datetime.now(UTC)
    account_id = conn.execute(
        "INSERT INTO accounts (appid, accesskey_hash, max_concurrency, disabled, "
        "created_at) VALUES ('b', 'x', 1, false, %s) RETURNING id",
        (now,),
    ).fetchone()
    assert account_id is not None
    voice_id = conn.execute(
        "INSERT INTO voices (account_id, name, source_format, source_bytes, duration_ms, pcmu, "
        "pcma, created_at) VALUES (%s, 'v', 'wav', 0, 0, '', '', %s) RETURNING id",
        (account_id[0], now),
    ).fetchone()
    assert voice_id is not None

    def insert(numbers: list[str], task_id: str) -> float:
        rows = [
            (u, task_id, account_id[0], "id", "+62" + n[1:], n, "queued", 1, now)
            for u, n in zip(call_uuids(numbers), numbers, strict=True)
        ]
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO tasks (id, account_id, nationcode, voice_id, userkey, todayonly, "
                "waittime, conntime, chengshudu, customuuid, status, total, duplicates, invalid, "
                "invalid_entries, local_day, created_at) VALUES (%s, %s, 'id', %s, false, 1, 30, "
                "30, '', '', 'active', %s, 0, 0, '[]', '2026-11-26', %s)",
                (task_id, account_id[0], voice_id[0], len(numbers), now),
            )
            with cursor.copy(
                "COPY calls (uuid, task_id, account_id, nationcode, number, submitted_number, "
                "status, round, queued_at) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(COPY_TYPES)
                for row in rows:
                    copy.write_row(row)
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


class Store:
    """One `ivrcast serve` on one kind of database, and its latencies."""

    def __init__(self, kind: str, workdir: Path, pg_names: list[str], *, dnc: int) -> None:
        self.kind = kind
        self.workdir = workdir / kind
        self.env = {**os.environ, "IVRCAST_DATA_DIR": str(workdir / kind / "data")}
        if kind == "postgresql":
            name = f"ivrcast_bench_{uuid.uuid4().hex[:8]}"
            pg_names.append(name)
            self.env["IVRCAST_DATABASE_URL"] = create_pg_database(name)
        cli(self.env, "account", "create", "--appid", "bench", "--accesskey", "bench-key")
        voice = workdir / "voice.wav"
        voice.write_bytes(demo_tone())
        cli(self.env, "voice", "upload", "--appid", "bench", "welcome", str(voice))
        if dnc:
            cli(self.env, "account", "create", "--appid", "listed", "--accesskey", "bench-key")
            cli(self.env, "voice", "upload", "--appid", "listed", "welcome", str(voice))
        self.process, self.url = start_server(workdir / kind / "data", self.env)
        self.client = httpx.Client(base_url=self.url, timeout=60)
        self.latencies: list[float] = []
        self.listed: list[float] = []
        self.unlisted: list[float] = []
        self.import_seconds = 0.0

    def fill_dnc(self, count: int) -> None:
        """`count` numbers none of the requests sends (0813…) on account `listed`'s list."""
        path = self.workdir / "dnc.csv"
        with path.open("w") as out:
            out.write("number\n")
            out.writelines(f"0813{i:08d}\n" for i in range(count))
        started = time.perf_counter()
        cli(self.env, "dnc", "import", str(path), "--nation", "id", "--appid", "listed")
        self.import_seconds = time.perf_counter() - started

    def submit(self, numbers: list[str], appid: str = "bench") -> float:
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
        response = self.client.post("/api/yunhu", data=form, files={"_": (None, "")})
        elapsed = time.perf_counter() - started
        body = response.json()
        assert body["data"]["accepted"] == NUMBERS_PER_REQUEST, body
        return elapsed

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait()


def main(requests: int, database: str, dnc: int = 0) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ivrcast-bench-"))
    kinds = ["sqlite", "postgresql"] if database == "both" else [database]
    pg_names: list[str] = []
    baselines: dict[str, Callable[[list[str], str], float]] = {}
    stores: list[Store] = []
    try:
        if "sqlite" in kinds:
            baselines["SQLite executemany"] = baseline_sqlite(workdir / "baseline.db")
        if "postgresql" in kinds:
            for label, make in (
                ("PostgreSQL executemany", baseline_postgres),
                ("PostgreSQL COPY", baseline_postgres_copy),
            ):
                name = f"ivrcast_bench_{uuid.uuid4().hex[:8]}"
                pg_names.append(name)
                baselines[label] = make(create_pg_database(name))
        stores = [Store(kind, workdir, pg_names, dnc=dnc) for kind in kinds]
        bare: dict[str, list[float]] = {label: [] for label in baselines}
        for batch in range(requests + 3):
            numbers = indonesian_mobiles(batch)
            for store in stores:
                elapsed = store.submit(numbers)
                if batch >= 3:  # the first requests warm caches and the connection pool
                    store.latencies.append(elapsed)
            for label, baseline in baselines.items():
                elapsed = baseline(numbers, uuid.uuid4().hex)
                if batch >= 3:
                    bare[label].append(elapsed)
        if dnc:
            for store in stores:
                store.fill_dnc(dnc)
            for batch in range(requests + 3):
                numbers = indonesian_mobiles(batch)
                for store in stores:
                    # Which goes first alternates, so neither gains from the other's work.
                    order = ["listed", "bench"] if batch % 2 else ["bench", "listed"]
                    took = {appid: store.submit(numbers, appid) for appid in order}
                    if batch >= 3:
                        store.listed.append(took["listed"])
                        store.unlisted.append(took["bench"])
    finally:
        for store in stores:
            store.close()
        for name in pg_names:
            drop_pg_database(name)
    print(f"{requests} requests of {NUMBERS_PER_REQUEST} numbers per store, interleaved")
    p50: dict[str, float] = {}
    for store in stores:
        p50[store.kind] = percentile(store.latencies, 0.5)
        p95 = percentile(store.latencies, 0.95)
        rate = NUMBERS_PER_REQUEST / p50[store.kind]
        print(
            f"PlayVoice {store.kind:10}  p50 {p50[store.kind] * 1000:6.1f} ms   "
            f"p95 {p95 * 1000:6.1f} ms   numbers/s (p50) {rate:,.0f}"
        )
    base50 = {label: statistics.median(values) for label, values in bare.items()}
    for label, value in base50.items():
        print(f"bare {label:24}  p50 {value * 1000:6.1f} ms")
    if "sqlite" in p50:
        ratio = p50["sqlite"] / base50["SQLite executemany"]
        print(f"SQLite request / bare executemany      {ratio:.2f}x")
    if "postgresql" in p50:
        pg = p50["postgresql"]
        print(f"PostgreSQL request / bare COPY         {pg / base50['PostgreSQL COPY']:.2f}x")
        print(
            f"PostgreSQL request / bare executemany  {pg / base50['PostgreSQL executemany']:.2f}x"
        )
    if len(p50) == 2:
        print(f"PostgreSQL request / SQLite request    {p50['postgresql'] / p50['sqlite']:.2f}x")
    for store in stores if dnc else []:
        listed50, unlisted50 = percentile(store.listed, 0.5), percentile(store.unlisted, 0.5)
        print(
            f"{store.kind}: do-not-call list of {dnc:,} imported in {store.import_seconds:.1f} s;"
            f" PlayVoice p50 {listed50 * 1000:.1f} ms with it, {unlisted50 * 1000:.1f} ms with"
            f" an empty list (interleaved): {listed50 / unlisted50:.2f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--dnc", type=int, default=0, help="numbers on the do-not-call list")
    arguments = parser.parse_args()
    main(arguments.requests, arguments.database, arguments.dnc)
