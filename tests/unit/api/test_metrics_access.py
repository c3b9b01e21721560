"""`/metrics` names every tenant: only the operator (or, with no token set, loopback) reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_service import Service, SettingsFactory, start_service

TOKEN = "operator-token-for-metrics"


@pytest.fixture
async def guarded(make_settings: SettingsFactory, database_url: str) -> AsyncIterator[Service]:
    settings = make_settings(database_url, security={"operator_token": TOKEN})
    async for running in start_service(settings):
        yield running


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_the_operator_token_as_a_bearer_token_reads_the_metrics(guarded: Service) -> None:
    response = await guarded.client.get("/metrics", headers=_bearer(TOKEN))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "ivrcast_calls" in response.text


@pytest.mark.parametrize(
    "headers",
    [{}, _bearer("guess"), {"authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong-token", "not-bearer"],
)
async def test_without_the_operator_token_nothing_is_shown(
    guarded: Service, headers: dict[str, str]
) -> None:
    guarded.add_account("tenant-that-must-not-leak")
    response = await guarded.client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == 601
    assert "tenant-that-must-not-leak" not in response.text


async def test_guessing_the_token_is_throttled_by_address(guarded: Service) -> None:
    for _ in range(10):
        assert (await guarded.client.get("/metrics", headers=_bearer("guess"))).status_code == 401
    throttled = await guarded.client.get("/metrics", headers=_bearer(TOKEN))
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "60"


async def test_with_no_operator_token_only_loopback_is_served(service: Service) -> None:
    # The service's client is 198.51.100.7, not loopback.
    refused = await service.client.get("/metrics")
    assert refused.status_code == 403
    assert "operator_token" in refused.json()["msg"]
    assert "alice" not in refused.text
    transport = httpx.ASGITransport(app=service.app, client=("127.0.0.1", 9000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ivrcast.test") as local:
        response = await local.get("/metrics")
    assert response.status_code == 200
