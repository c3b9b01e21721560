"""The real application, in process, on a real database; clients speak HTTP to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from factories import add_account, add_uploaded_voice
from ivrcast.app import create_app
from ivrcast.clock import FrozenClock
from ivrcast.config import Settings
from ivrcast.credentials import hash_secret, load_secret_key
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head
from ivrcast.voices.pool import TranscodePool

START = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # 10:00 in Jakarta


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    db: Database
    clock: FrozenClock

    def add_account(self, appid: str, accesskey: str = "secret-key", **extra: Any) -> int:
        with self.db.write() as conn:
            account = add_account(
                conn,
                appid,
                now=self.clock.now(),
                accesskey_hash=hash_secret(load_secret_key(self.settings), accesskey),
                **extra,
            )
        return account.id

    def add_voice(self, account_id: int, name: str = "welcome") -> None:
        with self.db.write() as conn:
            add_uploaded_voice(conn, account_id, now=self.clock.now(), name=name)

    async def yunhu(self, service: str, **fields: Any) -> dict[str, Any]:
        """POST multipart form-data, as the seed's PHP example does."""
        files = {"_": (None, "")}  # forces multipart even without a file
        data = {"service": service, **{k: str(v) for k, v in fields.items()}}
        response = await self.client.post("/api/yunhu", data=data, files=files)
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    async def as_alice(self, service: str, **fields: Any) -> dict[str, Any]:
        return await self.yunhu(service, appid="alice", accesskey="secret-key", **fields)


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    def make(database_url: str, **overrides: Any) -> Settings:
        return Settings.model_validate(
            {"data_dir": tmp_path / "data", "database_url": database_url, **overrides}
        )

    return make


async def start_service(
    settings: Settings, *, transcoder: TranscodePool | None = None
) -> AsyncIterator[Service]:
    clock = FrozenClock(START)
    app = create_app(settings, clock=clock, transcoder=transcoder)
    db: Database = app.state.ctx.db
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ivrcast.test") as client:
        service = Service(app, client, settings, db, clock)
        alice = service.add_account("alice", countries=["id", "in"])
        service.add_voice(alice)
        yield service
    # ASGITransport runs no lifespan, which would stop the transcode workers.
    app.state.ctx.transcoder.shutdown()
    db.dispose()


@pytest.fixture
async def service(make_settings: SettingsFactory, database_url: str) -> AsyncIterator[Service]:
    """The service on each database engine, with account `alice` and voice `welcome`."""
    async for running in start_service(make_settings(database_url)):
        yield running


@pytest.fixture
async def sqlite_service(make_settings: SettingsFactory, tmp_path: Path) -> AsyncIterator[Service]:
    """The service on SQLite only, for checks of the interface itself."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db = Database(url)
    upgrade_to_head(db)
    db.dispose()
    async for running in start_service(make_settings(url)):
        yield running
