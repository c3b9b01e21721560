"""PostgreSQL's bulk insert (COPY) writes exactly the rows its executemany would."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from ivrcast.store.accounts import create_account
from ivrcast.store.bulk import copy_rows, execute_rows
from ivrcast.store.engine import Database
from ivrcast.store.tables import calls, tasks
from ivrcast.store.tasks import NewTask, create_task
from ivrcast.store.voices import insert_voice

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 26, 3, 4, 5, 678901, tzinfo=UTC)
TASK_ID = "0" * 32
# Text COPY escapes tabs, newlines and backslashes, and spells NULL `\N`: values made of
# those, the empty string beside NULL, and text beyond ASCII.
ROWS: list[tuple[Any, ...]] = [
    ("01937f6e-0000-7000-8000-000000000001", "+6281234567890", "081234567890"),
    ("01937f6e-0000-7000-8000-000000000002", "+6281234567891", None),
    ("01937f6e-0000-7000-8000-000000000003", "+6281234567892", ""),
    ("01937f6e-0000-7000-8000-000000000004", "+6281234567893", "０８１２\t३४\\N"),
    ("01937f6e-0000-7000-8000-000000000005", "+6281234567894", "a\nb\r\\c 电话"),
]


VARYING = ("uuid", "number", "submitted_number")


def _constant(account_id: int) -> dict[str, Any]:
    """The values every call row of the task shares, as `create_task` gives them."""
    return {
        "task_id": TASK_ID,
        "account_id": account_id,
        "nationcode": "id",
        "status": "queued",
        "round": 1,
        "queued_at": NOW,
    }


def _task_and_account(db: Database) -> int:
    with db.write() as conn:
        account = create_account(conn, appid="a", accesskey_hash="h", now=NOW)
        voice = _voice(conn, account.id)
        conn.execute(
            tasks.insert().values(
                id=TASK_ID,
                account_id=account.id,
                nationcode="id",
                voice_id=voice,
                userkey=False,
                todayonly=1,
                waittime=30,
                conntime=30,
                chengshudu="",
                customuuid="",
                status="active",
                total=len(ROWS),
                duplicates=0,
                invalid=0,
                invalid_entries="[]",
                local_day=date(2026, 11, 26),
                created_at=NOW,
            )
        )
    return account.id


def _voice(conn: Any, account_id: int) -> int:
    voice = insert_voice(
        conn,
        account_id=account_id,
        name="v",
        source_url=None,
        source_format="wav",
        source_bytes=1,
        duration_ms=20,
        pcmu=b"\xff" * 160,
        pcma=b"\xd5" * 160,
        now=NOW,
    )
    return voice.id


def _calls(db: Database) -> list[dict[str, Any]]:
    """Every column of every call row."""
    with db.read() as conn:
        return [dict(row._mapping) for row in conn.execute(select(calls).order_by(calls.c.id))]


def test_copy_writes_every_column_as_executemany_does(
    postgres_url: str, other_postgres_url: str
) -> None:
    copied, executed = Database(postgres_url), Database(other_postgres_url)
    try:
        for db, insert in ((copied, copy_rows), (executed, execute_rows)):
            account_id = _task_and_account(db)
            with db.write() as conn:
                insert(conn, calls, constant=_constant(account_id), varying=VARYING, rows=ROWS)
        rows = _calls(copied)
        assert rows == _calls(executed)
        # ... and they are the values given, not merely the same mistake twice.
        assert [(r["uuid"], r["number"], r["submitted_number"]) for r in rows] == ROWS
        assert {(r["queued_at"], r["keys"], r["node_id"], r["round"]) for r in rows} == {
            (NOW, "", None, 1)
        }
    finally:
        copied.dispose()
        executed.dispose()


def test_a_task_submitted_on_postgresql_reads_back_as_given(postgres_url: str) -> None:
    """The whole submission on the COPY path: task and calls in one transaction."""
    db = Database(postgres_url)
    try:
        with db.write() as conn:
            account = create_account(conn, appid="a", accesskey_hash="h", now=NOW)
            task_id = create_task(
                conn,
                NewTask(
                    account_id=account.id,
                    nationcode="id",
                    voice_id=_voice(conn, account.id),
                    numbers=["+6281234567890", "+6281234567891"],
                    submitted_numbers=["0812-3456-7890", "6281234567891"],
                    userkey=True,
                    todayonly=2,
                    waittime=30,
                    conntime=60,
                    disnumber=None,
                    chengshudu="cs",
                    customuuid="订单-№42",
                    duplicates=0,
                    invalid=0,
                    local_day=date(2026, 11, 26),
                ),
                now=NOW,
            )
        with db.read() as conn:
            task = conn.execute(select(tasks).where(tasks.c.id == task_id)).one()
            rows = conn.execute(select(calls).order_by(calls.c.id)).all()
        assert (task.customuuid, task.disnumber, task.total) == ("订单-№42", None, 2)
        assert [(r.number, r.submitted_number, r.task_id, r.status) for r in rows] == [
            ("+6281234567890", "0812-3456-7890", task_id, "queued"),
            ("+6281234567891", "6281234567891", task_id, "queued"),
        ]
        assert all(r.queued_at == NOW and r.account_id == account.id for r in rows)
    finally:
        db.dispose()


def test_a_failed_submission_leaves_no_copied_rows(postgres_url: str) -> None:
    """The COPY is inside the store's transaction: an error after it rolls it back."""
    db = Database(postgres_url)
    try:
        account_id = _task_and_account(db)

        def copy_then_fail() -> None:
            with db.write() as conn:
                copy_rows(conn, calls, constant=_constant(account_id), varying=VARYING, rows=ROWS)
                raise RuntimeError("the request failed after the calls were written")

        with pytest.raises(RuntimeError):
            copy_then_fail()
        assert _calls(db) == []
    finally:
        db.dispose()
