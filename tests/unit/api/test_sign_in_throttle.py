"""Password guessing is throttled per (appid, client address), across every way in."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from api_service import Service

from ivrcast.app import create_app

WINDOW = 60  # [security] failed_sign_in_window_seconds, default
LIMIT = 10  # [security] max_failed_sign_ins, default
ELSEWHERE = ("203.0.113.9", 50000)


@pytest.fixture
async def elsewhere(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same app from another address."""
    transport = httpx.ASGITransport(app=service.app, client=ELSEWHERE)
    async with httpx.AsyncClient(transport=transport, base_url="http://ivrcast.test") as client:
        yield client


def _basic(appid: str, accesskey: str) -> dict[str, str]:
    value = base64.b64encode(f"{appid}:{accesskey}".encode()).decode()
    return {"authorization": f"Basic {value}"}


async def _fail(service: Service, times: int, service_name: str = "App.Sip_Voice.List") -> None:
    for _ in range(times):
        body = await service.yunhu(service_name, appid="alice", accesskey="wrong")
        assert body["code"] == 601
        assert (
            body["msg"]
            == "appid not authorized: unknown appid, wrong accesskey, or disabled account"
        )


async def test_ten_failures_then_even_the_right_key_is_refused_until_the_window_passes(
    service: Service, elsewhere: httpx.AsyncClient
) -> None:
    await _fail(service, LIMIT)
    throttled = await service.as_alice("App.Sip_Voice.List")
    assert throttled["code"] == 601
    assert "too many failed sign-ins" in throttled["msg"]
    assert throttled["msg"].endswith(f"try again in {WINDOW} s")

    # The customer's own servers, elsewhere, are not locked out by the guesses.
    other = await elsewhere.post(
        "/api/yunhu",
        data={"service": "App.Sip_Voice.List", "appid": "alice", "accesskey": "secret-key"},
        files={"_": (None, "")},
    )
    assert other.json()["code"] == 200

    service.clock.advance(WINDOW - 1)
    still = await service.as_alice("App.Sip_Voice.List")
    assert still["msg"].endswith("try again in 1 s")
    service.clock.advance(1)
    assert (await service.as_alice("App.Sip_Voice.List"))["code"] == 200


async def test_failures_before_the_limit_do_not_refuse_the_right_key(service: Service) -> None:
    await _fail(service, LIMIT - 1)
    assert (await service.as_alice("App.Sip_Voice.List"))["code"] == 200
    # A success does not clear the count: one more failure reaches the limit.
    await _fail(service, 1)
    assert "too many failed sign-ins" in (await service.as_alice("App.Sip_Voice.List"))["msg"]


async def test_the_window_slides_one_failure_at_a_time(service: Service) -> None:
    await _fail(service, LIMIT // 2)
    service.clock.advance(30)
    await _fail(service, LIMIT - LIMIT // 2)
    assert (await service.as_alice("App.Sip_Voice.List"))["msg"].endswith("try again in 30 s")
    service.clock.advance(30)
    # The first five aged out; five remain, so the right key is accepted again.
    assert (await service.as_alice("App.Sip_Voice.List"))["code"] == 200


async def test_login_counts_and_is_throttled_like_every_service(service: Service) -> None:
    await _fail(service, LIMIT, "App.Sip_Auth.Login")
    body = await service.as_alice("App.Sip_Auth.Login")
    assert body["code"] == 601
    assert "too many failed sign-ins" in body["msg"]
    assert "token" not in body["data"]


async def test_another_appid_from_the_same_address_is_its_own_count(service: Service) -> None:
    service.add_account("bob")
    await _fail(service, LIMIT)
    body = await service.yunhu("App.Sip_Voice.List", appid="bob", accesskey="secret-key")
    assert body["code"] == 200


async def test_v1_answers_429_with_retry_after(service: Service) -> None:
    for _ in range(LIMIT):
        wrong = await service.client.get("/v1/voices", headers=_basic("alice", "wrong"))
        assert wrong.status_code == 401
    throttled = await service.client.get("/v1/voices", headers=_basic("alice", "secret-key"))
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == str(WINDOW)
    assert throttled.json()["code"] == 601
    assert "too many failed sign-ins" in throttled.json()["msg"]
    token = await service.client.post(
        "/v1/token", json={"appid": "alice", "accesskey": "secret-key"}
    )
    assert token.status_code == 429
    service.clock.advance(WINDOW)
    ok = await service.client.get("/v1/voices", headers=_basic("alice", "secret-key"))
    assert ok.status_code == 200


async def test_every_api_process_on_the_database_shares_the_count(service: Service) -> None:
    """A second app on the same database stands for a second API process."""
    await _fail(service, LIMIT)
    second = create_app(service.settings, clock=service.clock)
    transport = httpx.ASGITransport(app=second, client=("198.51.100.7", 40001))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://x.test") as client:
            response = await client.get("/v1/voices", headers=_basic("alice", "secret-key"))
    finally:
        second.state.ctx.db.dispose()
    assert response.status_code == 429
