"""Schema migrations, run by `ivrcast migrate` and at the start of `ivrcast serve`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from ivrcast.store.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.url)
    return config


def upgrade_to_head(db: Database) -> None:
    """Bring the schema to the newest revision; a no-op when it is there already."""
    with db.write() as conn:
        config = alembic_config(db)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
