"""The claim round's statements read the queue through its index, on both engines.

A plan check, not a timing: every statement a claim round runs on `calls` (the due
tasks and their counts, a recount, the claim, the end of finished tasks, the calls in
progress) is captured as it runs, then explained by the database with the same
parameters. None may scan the calls table, and the claim must read the claim index in
its ORDER BY's order (no sort): then its cost is the rows it takes, whatever the
depth of the queue.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, text

from factories import add_account, add_task, add_voice
from ivrcast.callbacks.record import build_call_record
from ivrcast.store import transitions
from ivrcast.store.engine import Database

NOW = datetime(2025, 3, 10, 3, 0, tzinfo=UTC)
BUILD = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))
CLAIM_INDEX = "ix_calls_status_task_id_id"
TASKS = 12
CALLS_PER_TASK = 400


@pytest.fixture
def queued(database: Database) -> list[str]:
    """Tasks of two accounts with a few thousand queued calls, each task's consecutive
    as a submission writes them; on PostgreSQL analysed, so the planner knows the sizes."""
    with database.write() as conn:
        owners = [add_account(conn, appid, now=NOW).id for appid in ("acme", "other")]
        voices = {owner: add_voice(conn, owner, now=NOW) for owner in owners}
        task_ids = [
            add_task(
                conn,
                owners[t % 2],
                voices[owners[t % 2]],
                [f"+628120{t:02d}{n:05d}" for n in range(CALLS_PER_TASK)],
                now=NOW,
            )
            for t in range(TASKS)
        ]
    if database.engine.dialect.name == "postgresql":
        with database.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return task_ids


@contextmanager
def captured(database: Database) -> Iterator[list[tuple[str, Any]]]:
    """Every statement run on `calls` while the block runs, with its parameters."""
    statements: list[tuple[str, Any]] = []

    def keep(
        conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool
    ) -> None:
        if not many and "calls" in statement and not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(database.engine, "before_cursor_execute", keep)


def run_a_claim_round(database: Database, task_ids: list[str]) -> list[tuple[str, Any, Any]]:
    """The store side of a dialer round; each statement with the plan the database
    gives it."""
    with captured(database) as statements, database.write() as conn:
        due = transitions.due_tasks(conn, now=NOW, count_up_to=8)
        assert len(due) == TASKS
        assert all(task.more_queued for task in due)
        assert transitions.count_due_calls(conn, task_ids[0], 50, now=NOW) == 50
        transitions.finish_ended_tasks(conn, now=NOW)
        transitions.active_calls_by_account(conn)
        claimed = transitions.claim_due_calls(
            conn, task_id=task_ids[3], limit=50, node_id="n1", build_record=BUILD, now=NOW
        )
        assert len(claimed) == 50
        return [(sql, params, explain(conn, sql, params)) for sql, params in list(statements)]


def explain(conn: Any, sql: str, params: Any) -> Any:
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        return [row.detail for row in rows]
    (plan,) = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", params).scalar_one()
    return plan["Plan"]


def pg_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from pg_nodes(child)


def is_claim(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT CALLS.ID") and "LIMIT" in sql.upper()


def reads_the_queue(params: Any) -> bool:
    """The statement is about queued calls (rather than calls in progress, a bounded
    set the status range of the index may serve)."""
    values = params.values() if isinstance(params, dict) else params
    return "queued" in list(values)


def test_no_statement_of_a_claim_round_walks_the_queue(
    database: Database, queued: list[str]
) -> None:
    statements = run_a_claim_round(database, queued)
    claims = [plan for sql, _, plan in statements if is_claim(sql)]
    assert len(claims) == 1
    assert any(reads_the_queue(params) for _, params, _ in statements)
    if database.engine.dialect.name == "sqlite":
        by_task = f"USING INDEX {CLAIM_INDEX} (status=? AND task_id=?)"
        for sql, params, plan in statements:
            reads = [line for line in plan if line.startswith(("SCAN calls", "SEARCH calls"))]
            assert not [line for line in reads if line.startswith("SCAN")], (sql, plan)
            if reads_the_queue(params):
                # Through a task's range of the index, or by primary key: never the
                # whole `queued` range.
                assert all(line.endswith(by_task) or "PRIMARY KEY" in line for line in reads), (
                    sql,
                    plan,
                )
        (claim,) = claims
        assert claim == [f"SEARCH calls {by_task}"]
    else:
        for sql, params, plan in statements:
            for node in pg_nodes(plan):
                shown = (sql, json.dumps(plan, indent=1))
                if node.get("Relation Name") == "calls":
                    assert node["Node Type"] != "Seq Scan", shown
                if node.get("Index Name") == CLAIM_INDEX and reads_the_queue(params):
                    assert "task_id" in node["Index Cond"], shown
        (claim,) = claims
        kinds = [node["Node Type"] for node in pg_nodes(claim)]
        assert "Sort" not in kinds, json.dumps(claim, indent=1)
        reads = [node for node in pg_nodes(claim) if node.get("Relation Name") == "calls"]
        assert [node.get("Index Name") for node in reads] == [CLAIM_INDEX]
