"""Schema migrations, run by `ivrcast migrate` and at the start of `ivrcast serve`."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, select

from ivrcast.store.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"
# Alembic's own bookkeeping table, as it creates it (not part of `tables.metadata`).
_VERSION_TABLE = Table("alembic_version", MetaData(), Column("version_num", String(32)))


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.url)
    return config


def upgrade_to_head(db: Database) -> None:
    """Bring the schema to the newest revision; a no-op when it is there already."""
    with db.schema_change() as conn:
        config = alembic_config(db)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


@functools.cache
def head_revisions() -> frozenset[str]:
    """The newest revision(s) this code ships (read once: the files do not change)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def current_revisions(conn: Connection) -> frozenset[str]:
    """The revision(s) the database's schema is at; empty when never migrated.

    Read from Alembic's table directly: its MigrationContext logs two INFO lines each
    time it is made, which a readiness probe every few seconds would turn into noise.
    """
    if not inspect(conn).has_table(_VERSION_TABLE.name):
        return frozenset()
    return frozenset(conn.execute(select(_VERSION_TABLE.c.version_num)).scalars())
