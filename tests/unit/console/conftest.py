"""The app in process on SQLite, with two accounts, for the console's HTTP-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from console_client import OPERATOR_TOKEN, START, Console

from ivrcast.app import create_app
from ivrcast.clock import FrozenClock
from ivrcast.config import Settings
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    database = Database(url)
    upgrade_to_head(database)
    database.dispose()
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "database_url": url,
            "security": {"operator_token": OPERATOR_TOKEN, "console_session_minutes": 30},
            "callbacks": {"timezone": "Asia/Jakarta"},
        }
    )
    clock = FrozenClock(START)
    # ASGITransport sends no lifespan events: no callback sender runs beside these tests.
    app = create_app(settings, clock=clock)
    app.state.console_hub.fresh_seconds = 0
    db: Database = app.state.ctx.db
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    running = Console(settings, db, clock, transport, {})
    alice = running.add_account("alice", countries=["id", "in"])
    running.add_voice(alice)
    bob = running.add_account("bob")
    running.add_voice(bob, "bob-voice")
    yield running
    app.state.ctx.transcoder.shutdown()
    db.dispose()
