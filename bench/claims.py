"""The dialer's claim round with a deep queue beside a shallow one, in the same run.
`python bench/claims.py [--database sqlite|postgresql|both] [--rounds N] [--tasks T]`;
never asserts.

For each store, two databases with the same T tasks (default 500, of 10 accounts; every
task due, calling window open): *shallow* holds 5,000 queued calls, *deep* 1,000,000
(10 and 2,000 a task of 500). With 500 tasks a round gives each task at most one call;
`--tasks 5` gives each 40, so that the claim of many rows of one task is measured too.
The queues are filled by one `INSERT ... SELECT` (a recursive CTE on SQLite,
`generate_series` on PostgreSQL), each task's calls consecutive as one submission writes
them, then PostgreSQL is `VACUUM ANALYZE`d (autovacuum's work after such an insert);
SQLite gets no ANALYZE (no deployment runs one).

A round is the dialer's own (`Dialer._claim_round`: due tasks, expiry, finished tasks,
calls in progress per account, the fair plan, one claim per task given slots), claiming
up to `--batch` calls (the default `claim_batch`, 200) for one trunk. Each round is timed
alone; its calls are then given back (`release_calls`, untimed) so the depth stays the
same. Rounds alternate between the two databases, so both see the same machine load.
The figure is p99 of the round's latency, deep ÷ shallow.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import bindparam, insert, text

from ivrcast.callbacks.record import build_call_record
from ivrcast.clock import SystemClock
from ivrcast.config import load_settings
from ivrcast.dialer.database import DatabaseThread
from ivrcast.dialer.limits import TrunkState
from ivrcast.dialer.loop import Dialer
from ivrcast.dialer.metrics import DialerMetrics
from ivrcast.dialer.routing import Router
from ivrcast.sip import Engine
from ivrcast.store import transitions
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head
from ivrcast.store.tables import Timestamp, accounts, tasks, voices

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ACCOUNTS = 10
SHALLOW = 5_000
DEEP = 1_000_000
NODE = "bench-node"
NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)

CONFIG = """\
data_dir = "{data_dir}"
database_url = "{database_url}"
[dialer]
claim_batch = {batch}
[countries.id]
window = "00:00-24:00"
[[trunks]]
name = "bench"
countries = ["id"]
proxy = "127.0.0.1:5060"
callerids = ["622150001000"]
max_channels = 10000
max_cps = 10000
"""

# Each task's calls are consecutive ids, as one submission writes them: call i belongs to
# task i / per_task. Only what the claim reads differs between rows.
FILL_SQLITE = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :calls)
INSERT INTO calls (uuid, task_id, account_id, nationcode, number, status, round, final,
                   queued_at)
SELECT printf('%036d', i), t.id, t.account_id, 'id', printf('+62812%07d', i % :per_task),
       'queued', 1, 1, :now
FROM n JOIN tasks t ON t.id = printf('task%028d', i / :per_task)
"""
FILL_POSTGRESQL = """
INSERT INTO calls (uuid, task_id, account_id, nationcode, number, status, round, final,
                   queued_at)
SELECT lpad(i::text, 36, '0'), t.id, t.account_id, 'id',
       '+62812' || lpad((i % :per_task)::text, 7, '0'), 'queued', 1, true, :now
FROM generate_series(0, :calls - 1) AS i
JOIN tasks t ON t.id = 'task' || lpad((i / :per_task)::text, 28, '0')
"""


def seed(db: Database, calls: int, tasks_count: int) -> None:
    """The accounts, a voice, the tasks, and `calls` queued calls spread evenly."""
    with db.write() as conn:
        account_ids = [
            conn.execute(
                insert(accounts)
                .values(appid=f"bench{a}", accesskey_hash="0" * 64, max_concurrency=100_000,
                        created_at=NOW)
                .returning(accounts.c.id)
            ).scalar_one()
            for a in range(min(ACCOUNTS, tasks_count))
        ]  # fmt: skip
        voice_id = conn.execute(
            insert(voices)
            .values(account_id=account_ids[0], name="bench", source_format="wav",
                    source_bytes=0, duration_ms=0, pcmu=b"", pcma=b"", created_at=NOW)
            .returning(voices.c.id)
        ).scalar_one()  # fmt: skip
        conn.execute(
            insert(tasks),
            [
                {"id": f"task{t:028d}", "account_id": account_ids[t % len(account_ids)],
                 "nationcode": "id", "voice_id": voice_id, "userkey": False, "todayonly": 2,
                 "waittime": 30, "conntime": 60, "chengshudu": "", "customuuid": "",
                 "status": "active", "total": calls // tasks_count, "duplicates": 0, "invalid": 0,
                 "invalid_entries": "[]", "local_day": date(2026, 11, 29), "created_at": NOW}
                for t in range(tasks_count)
            ],
        )  # fmt: skip
        fill = FILL_SQLITE if db.engine.dialect.name == "sqlite" else FILL_POSTGRESQL
        conn.execute(
            text(fill).bindparams(bindparam("now", type_=Timestamp())),
            {"calls": calls, "per_task": calls // tasks_count, "now": NOW},
        )
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def claim_plan(db: Database) -> list[str]:
    """The plan of the claim statement for the first task, as each store explains it."""
    task_id = f"task{0:028d}"
    claim = (
        "SELECT id FROM calls WHERE status = 'queued' AND task_id = :task"
        " AND (due_at IS NULL OR due_at <= :now) ORDER BY id LIMIT 200"
    )
    with db.read() as conn:
        if db.engine.dialect.name == "sqlite":
            rows = conn.execute(
                text(f"EXPLAIN QUERY PLAN {claim}"), {"task": task_id, "now": "2026-11-29"}
            )
            return [str(row.detail) for row in rows]
        rows = conn.execute(
            text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {claim} FOR UPDATE SKIP LOCKED"),
            {"task": task_id, "now": NOW},
        )
        return [str(row[0]) for row in rows]


class Side:
    """One database and a dialer claiming from it."""

    def __init__(self, name: str, url: str, workdir: Path, batch: int) -> None:
        self.name = name
        self.db = Database(url)
        config = workdir / f"{name}.toml"
        config.write_text(CONFIG.format(data_dir=workdir / name, database_url=url, batch=batch))
        settings = load_settings(config, {})
        self.trunks = [TrunkState.create(t) for t in settings.trunks]
        self.dialer = Dialer(
            settings,
            DatabaseThread(self.db),
            Engine(no_rtp_timeout=None),
            Router(self.trunks),
            node_id=NODE,
            clock=SystemClock(),
            build_record=functools.partial(build_call_record, timezone=ZoneInfo("UTC")),
            metrics=DialerMetrics(NODE),
        )
        self.batch = batch
        self.seconds: list[float] = []
        self.claimed = 0

    def round(self) -> None:
        allowance = {trunk.name: self.batch for trunk in self.trunks}
        started = time.perf_counter()
        result = self.dialer._claim_round(NOW, allowance)
        self.seconds.append(time.perf_counter() - started)
        ids = [call.id for call, _ in result.claimed]
        self.claimed += len(ids)
        with self.db.write() as conn:
            transitions.release_calls(conn, ids, node_id=NODE)

    def close(self) -> None:
        self.db.dispose()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def pg_database(name: str) -> str:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql:", "postgresql+psycopg:") + (
        f"/{name}"
    )


def drop_pg_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_store(
    kind: str, workdir: Path, *, rounds: int, warmup: int, batch: int, tasks_count: int
) -> dict[str, object]:
    sides: list[Side] = []
    pg_names: list[str] = []
    try:
        fills: dict[str, float] = {}
        for name, calls in (("shallow", SHALLOW), ("deep", DEEP)):
            if kind == "sqlite":
                url = f"sqlite:///{workdir / f'{kind}-{name}.db'}"
            else:
                pg_names.append(f"ivrcast_claims_{uuid.uuid4().hex[:8]}")
                url = pg_database(pg_names[-1])
            db = Database(url)
            upgrade_to_head(db)
            started = time.perf_counter()
            seed(db, calls, tasks_count)
            fills[name] = time.perf_counter() - started
            db.dispose()
            sides.append(Side(name, url, workdir, batch))
        plans = {side.name: claim_plan(side.db) for side in sides}
        for side in sides:  # warm-up: caches, prepared plans
            for _ in range(warmup):
                side.round()
            side.seconds.clear()
            side.claimed = 0
        for _ in range(rounds):
            for side in sides:
                side.round()
        figures: dict[str, object] = {}
        for side in sides:
            figures[side.name] = {
                "fill_s": round(fills[side.name], 1),
                "claimed_per_round": side.claimed / rounds,
                "p50_ms": round(percentile(side.seconds, 0.5) * 1000, 2),
                "p99_ms": round(percentile(side.seconds, 0.99) * 1000, 2),
                "plan": plans[side.name],
            }
        shallow, deep = sides
        figures["p99_deep_over_shallow"] = round(
            percentile(deep.seconds, 0.99) / percentile(shallow.seconds, 0.99), 2
        )
        figures["p50_deep_over_shallow"] = round(
            percentile(deep.seconds, 0.5) / percentile(shallow.seconds, 0.5), 2
        )
        return figures
    finally:
        for side in sides:
            side.close()
        for name in pg_names:
            drop_pg_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--batch", type=int, default=200, help="claim_batch")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=5, help="rounds not counted, each side")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            kind: run_store(
                kind,
                Path(tmp),
                rounds=args.rounds,
                warmup=args.warmup,
                batch=args.batch,
                tasks_count=args.tasks,
            )
            for kind in kinds
        }
    print(json.dumps({"tasks": args.tasks, "batch": args.batch, "rounds": args.rounds, **result},
                     indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
