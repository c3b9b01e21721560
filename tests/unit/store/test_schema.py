"""The migrations produce exactly the tables the code declares, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head
from ivrcast.store.tables import metadata


def test_migrations_match_the_declared_schema(database: Database) -> None:
    with database.read() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrading_twice_changes_nothing(database: Database) -> None:
    upgrade_to_head(database)
    with database.read() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
