"""Signing in and out of the console: cookie flags, CSRF, expiry, the operator."""

from __future__ import annotations

import httpx
from console_client import OPERATOR_TOKEN, Console, csrf_of


def _set_cookie(response: httpx.Response) -> str:
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    assert len(cookies) == 1, cookies
    return cookies[0]


async def test_a_page_without_a_session_redirects_to_the_sign_in_form(console: Console) -> None:
    async with console.browser() as client:
        response = await client.get("/console/tasks?account=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/signin?next=%2Fconsole%2Ftasks%3Faccount%3Dx"


async def test_streams_and_scripts_get_401_rather_than_a_form(console: Console) -> None:
    async with console.browser() as client:
        stream = await client.get(
            "/console/events/overview", headers={"accept": "text/event-stream"}
        )
        script = await client.post("/console/send", headers={"accept": "application/json"})
    assert (stream.status_code, script.status_code) == (401, 401)


async def test_signing_in_sets_an_httponly_lax_cookie_that_expires(console: Console) -> None:
    async with console.browser() as client:
        form = await client.get("/console/signin")
        anonymous = _set_cookie(form).lower()
        response = await console.sign_in(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/"
    cookie = _set_cookie(response).lower()
    for flags in (anonymous, cookie):
        assert "httponly" in flags
        assert "samesite=lax" in flags
        assert "path=/console" in flags
        # Plain HTTP here; over HTTPS the cookie is also Secure.
        assert "secure" not in flags
    assert "max-age=1800" in cookie


async def test_the_cookie_is_secure_over_https(console: Console) -> None:
    async with httpx.AsyncClient(
        transport=console.transport, base_url="https://ivrcast.test"
    ) as client:
        response = await client.get("/console/signin")
    assert "secure" in _set_cookie(response).lower()


async def test_signing_in_goes_back_to_the_page_asked_for_and_nowhere_else(
    console: Console,
) -> None:
    async with console.browser() as client:
        csrf = csrf_of(await client.get("/console/signin"))
        fields = {"appid": "alice", "accesskey": "secret-key", "csrf": csrf}
        inside = await client.post("/console/signin", data={**fields, "next": "/console/calls"})
        csrf = csrf_of(await client.get("/console/signin"))
        outside = await client.post(
            "/console/signin",
            data={**fields, "csrf": csrf, "next": "https://evil.example/console/"},
        )
    assert inside.headers["location"] == "/console/calls"
    assert outside.headers["location"] == "/console/"


async def test_a_wrong_accesskey_is_refused_with_the_api_s_words(console: Console) -> None:
    async with console.browser() as client:
        response = await console.sign_in(client, accesskey="wrong")
        follow = await client.get("/console/tasks")
    assert response.status_code == 401
    assert "appid not authorized" in response.text
    assert follow.status_code == 303


async def test_a_sign_in_without_the_form_s_csrf_token_is_refused(console: Console) -> None:
    async with console.browser() as client:
        await client.get("/console/signin")
        missing = await client.post(
            "/console/signin", data={"appid": "alice", "accesskey": "secret-key"}
        )
        wrong = await client.post(
            "/console/signin", data={"appid": "alice", "accesskey": "secret-key", "csrf": "x"}
        )
    async with console.browser() as fresh:
        no_cookie = await fresh.post(
            "/console/signin", data={"appid": "alice", "accesskey": "secret-key", "csrf": "x"}
        )
    assert (missing.status_code, wrong.status_code, no_cookie.status_code) == (403, 403, 403)


async def test_signing_in_replaces_the_anonymous_session_id(console: Console) -> None:
    """A session id planted before sign-in (session fixation) is not the one used after."""
    async with console.browser() as client:
        before = csrf_of(await client.get("/console/signin"))
        await console.sign_in(client)
        after = await console.csrf(client)
    assert before != after


async def test_the_session_ends_after_its_lifetime(console: Console) -> None:
    async with console.signed_in() as client:
        console.clock.advance(29 * 60)
        assert (await client.get("/console/tasks")).status_code == 200
        console.clock.advance(61)
        assert (await client.get("/console/tasks")).status_code == 303


async def test_signing_out_ends_the_session(console: Console) -> None:
    async with console.signed_in() as client:
        csrf = await console.csrf(client)
        refused = await client.post("/console/signout")
        response = await client.post("/console/signout", data={"csrf": csrf})
        after = await client.get("/console/tasks")
    assert refused.status_code == 403
    assert response.status_code == 303
    assert response.headers["location"] == "/console/signin?notice=signed-out"
    assert "max-age=0" in _set_cookie(response).lower()
    assert after.status_code == 303


async def test_a_disabled_account_s_session_ends_at_once(console: Console) -> None:
    from ivrcast.store.accounts import update_account

    async with console.signed_in() as client:
        with console.db.write() as conn:
            update_account(conn, "alice", disabled=True)
        assert (await client.get("/console/tasks")).status_code == 303


async def test_the_operator_signs_in_with_the_configured_token(console: Console) -> None:
    async with console.browser() as client:
        csrf = csrf_of(await client.get("/console/signin"))
        wrong = await client.post("/console/signin/operator", data={"token": "no", "csrf": csrf})
        right = await client.post(
            "/console/signin/operator", data={"token": OPERATOR_TOKEN, "csrf": csrf}
        )
        page = await client.get("/console/tasks")
    assert wrong.status_code == 401
    assert right.status_code == 303
    assert page.status_code == 200
    assert "operator" in page.text


async def test_without_an_operator_token_there_is_no_operator_sign_in(
    console: Console,
) -> None:
    from ivrcast.config import Settings

    settings = Settings.model_validate(
        {**console.settings.model_dump(), "security": {"operator_token": None}}
    )
    object.__setattr__(console.transport.app.state.ctx, "settings", settings)  # type: ignore[attr-defined]
    async with console.browser() as client:
        form = await client.get("/console/signin")
        csrf = csrf_of(form)
        response = await client.post("/console/signin/operator", data={"token": "", "csrf": csrf})
    assert "Sign in as operator" not in form.text
    assert response.status_code == 401
    assert "disabled" in response.text
