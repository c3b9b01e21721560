"""The console's sign-in forms are throttled like the API: per appid and address."""

from __future__ import annotations

import httpx
from console_client import OPERATOR_TOKEN, Console, csrf_of

LIMIT = 10
WINDOW = 60


async def _operator_sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    csrf = csrf_of(await client.get("/console/signin"))
    return await client.post("/console/signin/operator", data={"token": token, "csrf": csrf})


async def test_ten_wrong_accesskeys_then_429_even_with_the_right_one(console: Console) -> None:
    async with console.browser() as client:
        for _ in range(LIMIT):
            wrong = await console.sign_in(client, accesskey="wrong")
            assert wrong.status_code == 401
        throttled = await console.sign_in(client)
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == str(WINDOW)
        assert "too many failed sign-ins" in throttled.text
        # Another appid from the same address keeps its own count.
        assert (await console.sign_in(client, "bob")).status_code == 303
        console.clock.advance(WINDOW)
        assert (await console.sign_in(client)).status_code == 303


async def test_another_address_signs_in_while_this_one_is_throttled(console: Console) -> None:
    async with console.browser() as client:
        for _ in range(LIMIT):
            await console.sign_in(client, accesskey="wrong")
        assert (await console.sign_in(client)).status_code == 429
    transport = httpx.ASGITransport(app=console.transport.app, client=("203.0.113.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://ivrcast.test") as other:
        assert (await console.sign_in(other)).status_code == 303


async def test_operator_token_guesses_are_throttled_by_address(console: Console) -> None:
    async with console.browser() as client:
        for _ in range(LIMIT):
            wrong = await _operator_sign_in(client, "guess")
            assert wrong.status_code == 401
            assert "operator token is not valid" in wrong.text
        throttled = await _operator_sign_in(client, OPERATOR_TOKEN)
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == str(WINDOW)
        console.clock.advance(WINDOW)
        assert (await _operator_sign_in(client, OPERATOR_TOKEN)).status_code == 303
