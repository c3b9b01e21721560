"""The web console: pages for customers and operators, at `/console`.

`install(app)` adds the routes, the static files (served by the app itself: no CDN, so
the console works on machines without internet access), the console's exception
handlers and its response headers. Everything runs on the API's `ApiContext`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ivrcast.console.overview import OverviewHub
from ivrcast.console.session import SessionKeys
from ivrcast.console.web import PREFIX, CsrfRefused, SignInRequired, make_templates

STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        b"form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def install(app: FastAPI) -> None:
    from ivrcast.console.routes import router

    settings = app.state.ctx.settings
    app.state.console_keys = SessionKeys(app.state.ctx.key)
    app.state.console_templates = make_templates(settings.callbacks.timezone)
    app.state.console_hub = OverviewHub(ZoneInfo(settings.callbacks.timezone))
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_middleware(ConsoleHeaders)


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    accept = request.headers.get("accept", "")
    if "text/event-stream" in accept or "application/json" in accept:
        # Streams and the page's scripts get a status they can act on, not a sign-in form.
        return JSONResponse({"error": "sign in first"}, status_code=401)
    target = f"{PREFIX}/signin"
    if exc.next_url:
        target += "?next=" + quote(exc.next_url, safe="")
    return RedirectResponse(target, status_code=303)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    return Response(
        "This form has expired or did not come from this console (CSRF check failed). "
        "Go back, reload the page and try again.",
        status_code=403,
        media_type="text/plain",
    )


class ConsoleHeaders:
    """Adds the console's security headers, and `no-store` unless the route chose a cache
    policy, to every response under `/console` (and leaves the API's alone)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(f"{PREFIX}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                if not static and not any(name == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
