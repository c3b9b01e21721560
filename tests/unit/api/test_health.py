"""`/healthz` and `/readyz` on both databases: ready only when the schema is current and,
with trunks configured, a dialer node beats."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_service import START, Service, SettingsFactory, start_service
from sqlalchemy import text

from ivrcast.app import create_app
from ivrcast.store.migrate import head_revisions
from ivrcast.store.nodes import heartbeat, register_node, stop_node
from ivrcast.voices.pool import TranscodePool

TRUNK = {"name": "id-main", "countries": ["id"], "proxy": "127.0.0.1:5070"}


@pytest.fixture
async def with_trunk(make_settings: SettingsFactory, database_url: str) -> AsyncIterator[Service]:
    settings = make_settings(database_url, trunks=[TRUNK], dialer={"heartbeat_seconds": 5})
    async for running in start_service(settings):
        yield running


async def readyz(service: Service) -> tuple[int, list[str]]:
    response = await service.client.get("/readyz")
    body = response.json()
    return response.status_code, body["reasons"]


async def test_healthz_answers(service: Service) -> None:
    response = await service.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_with_no_trunk_and_a_current_schema(service: Service) -> None:
    assert await readyz(service) == (200, [])


async def test_not_ready_while_migrations_are_behind(service: Service) -> None:
    (head,) = head_revisions()
    older = f"{int(head) - 1:04d}"
    with service.db.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": older})
    status, reasons = await readyz(service)
    assert status == 503
    assert reasons == [f"database schema at revision {older}, this code needs {head}: migrate"]


async def test_with_trunks_ready_only_while_a_dialer_node_beats(with_trunk: Service) -> None:
    service = with_trunk
    status, reasons = await readyz(service)
    assert status == 503
    assert reasons == ["no dialer node has sent a heartbeat in the last 15 s"]
    with service.db.write() as conn:
        register_node(conn, node_id="n1", hostname="h", pid=1, now=START)
    assert await readyz(service) == (200, [])
    # Three missed beats (recovery's dead-node limit): not ready.
    service.clock.advance(16)
    assert (await readyz(service))[0] == 503
    with service.db.write() as conn:
        heartbeat(conn, node_id="n1", now=service.clock.now())
    assert (await readyz(service))[0] == 200
    with service.db.write() as conn:
        stop_node(conn, node_id="n1", now=service.clock.now())
    assert (await readyz(service))[0] == 503


async def test_not_ready_when_the_database_does_not_answer(make_settings: SettingsFactory) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    settings = make_settings("postgresql://postgres@127.0.0.1:1/none")
    app = create_app(settings, transcoder=TranscodePool(1))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["reasons"] == ["database unreachable"]
            assert (await client.get("/healthz")).status_code == 200
    finally:
        app.state.ctx.transcoder.shutdown()
        app.state.ctx.db.dispose()
