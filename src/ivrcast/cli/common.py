"""What every `ivrcast` command shares: the `--config` option, the consoles, and
opening the configured, migrated database."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ivrcast.config import Settings, load_settings
from ivrcast.credentials import SEALED_PREFIX, load_secret_key, seal_secret
from ivrcast.private_files import private_dir
from ivrcast.store import accounts as account_store
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head

console = Console()
errors = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config file (default: $IVRCAST_CONFIG, else built-ins)."),
]


def settings_from(config: Path | None) -> Settings:
    return load_settings(config, os.environ)


def open_database(settings: Settings) -> Database:
    """The migrated database, with the data folder made private and any callback secret
    still stored in plaintext (written before they were encrypted) encrypted."""
    private_dir(settings.data_dir)
    db = Database(settings.database_url)
    upgrade_to_head(db)
    _seal_plaintext_callback_secrets(db, load_secret_key(settings))
    return db


def _seal_plaintext_callback_secrets(db: Database, key: bytes) -> None:
    """Encrypt callback secrets stored before encryption at rest. The server key is not
    the database's to know, so this is done here rather than in an Alembic revision."""
    with db.write() as conn:
        for account_id, stored in account_store.plaintext_callback_secrets(conn, SEALED_PREFIX):
            account_store.set_callback_secret(conn, account_id, seal_secret(key, stored))


def when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")
