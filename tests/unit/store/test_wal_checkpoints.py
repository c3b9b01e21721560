"""SQLite checkpoints taken off the request path: off in commits, on in `checkpoint()`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ivrcast.store.accounts import create_account
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head

MARKER = "appid-only-in-the-wal"


def autocheckpoint_of(db: Database) -> int:
    with db.read() as conn:
        value: int = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
    return value


def test_commits_leave_checkpoints_to_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    plain = Database(f"sqlite:///{path}")
    assert autocheckpoint_of(plain) == 1000
    upgrade_to_head(plain)
    plain.dispose()  # the last connection to close checkpoints everything

    db = Database(f"sqlite:///{path}", background_checkpoints=True)
    assert autocheckpoint_of(db) == 0
    with db.write() as conn:
        create_account(conn, appid=MARKER, accesskey_hash="h", now=datetime.now(UTC))
    # Committed, readable, but still only in the WAL: the commit copied nothing back.
    assert MARKER.encode() not in path.read_bytes()
    db.checkpoint()
    assert MARKER.encode() in path.read_bytes()
    db.dispose()


def test_postgresql_has_nothing_to_checkpoint(database_url: str) -> None:
    db = Database(database_url, background_checkpoints=True)
    assert db.background_checkpoints is (db.dialect == "sqlite")
    db.dispose()
