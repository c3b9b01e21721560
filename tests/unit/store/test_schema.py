"""The migrations produce exactly the tables the code declares, on both engines."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from ivrcast.store.engine import Database, IntegrityViolation
from ivrcast.store.migrate import (
    alembic_config,
    current_revisions,
    head_revisions,
    upgrade_to_head,
)
from ivrcast.store.tables import metadata


def test_migrations_match_the_declared_schema(database: Database) -> None:
    with database.read() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrading_twice_changes_nothing(database: Database) -> None:
    upgrade_to_head(database)
    with database.read() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_a_database_holding_calls_and_records_upgrades(database: Database) -> None:
    """From before the revisions that rebuild `tasks` and `calls` (on SQLite by copying
    them, which other tables refer to) to the newest, rows and keys intact."""
    with database.schema_change() as conn:
        config = alembic_config(database)
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    with database.write() as conn:
        for statement in ROWS_AT_0004:
            conn.execute(text(statement))
    upgrade_to_head(database)
    with database.read() as conn:
        assert current_revisions(conn) == head_revisions()
        assert conn.execute(text("SELECT task_id, account_id, round FROM calls")).all() == [
            ("t1", 1, 1)
        ]
        assert conn.execute(text("SELECT call_id FROM call_records")).all() == [(1,)]
    with pytest.raises(IntegrityViolation), database.write() as conn:
        # Keys hold after the rebuild: a call whose account is not its task's.
        conn.execute(text(CALL.format(id=2, uuid="u2", account_id=2)))


CALL = (
    "INSERT INTO calls (id, uuid, task_id, account_id, nationcode, number, status, queued_at)"
    " VALUES ({id}, '{uuid}', 't1', {account_id}, 'id', '+6281200000001', 'completed',"
    " '2025-01-01 00:00:00')"
)
ROWS_AT_0004 = [
    "INSERT INTO accounts (id, appid, accesskey_hash, created_at)"
    " VALUES (1, 'a', 'x', '2025-01-01 00:00:00'), (2, 'b', 'x', '2025-01-01 00:00:00')",
    "INSERT INTO voices (id, account_id, name, source_format, source_bytes, duration_ms, pcmu,"
    " pcma, created_at) VALUES (1, 1, 'v', 'wav', 0, 0, '', '', '2025-01-01 00:00:00')",
    "INSERT INTO tasks (id, account_id, nationcode, voice_id, userkey, todayonly, waittime,"
    " conntime, chengshudu, customuuid, status, total, duplicates, invalid, invalid_entries,"
    " local_day, created_at) VALUES ('t1', 1, 'id', 1, false, 1, 30, 30, '', '', 'finished',"
    " 1, 0, 0, '[]', '2025-01-01', '2025-01-01 00:00:00')",
    CALL.format(id=1, uuid="u1", account_id=1),
    "INSERT INTO call_records (id, call_id, account_id, task_id, uuid, payload, created_at)"
    " VALUES (1, 1, 1, 't1', 'u1', '{}', '2025-01-01 00:00:00')",
]
