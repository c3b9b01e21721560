"""Bounds on what a request may send, enforced on the bytes as they arrive.

`RequestLimits` wraps the whole app, before any route or authentication runs. It counts
the body bytes a route reads (a declared `Content-Length` is refused early, but a
chunked body declares nothing) and times the reads: once a body passes its limit, pauses
too long or misses its deadline, the route's own answer is dropped and the client gets
the error in the route's shape, on a connection that is then closed:

- `/api/yunhu`, `/` and `/api/cdrs`: the vendor envelope, HTTP 200, `code` 400;
- `/v1`: `{"code", "msg"}` with 413 or 408;
- anything else (the console): plain text with 413 or 408.

A NUL character in the path or the query string is refused the same way (as a 400):
no text parameter can hold one, and PostgreSQL rejects them in every statement.

Uploads (a multipart request to the vendor dispatcher, `POST /v1/voices`, `POST
/console/voices`) may carry `limits.max_upload_bytes` more than other requests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ivrcast.api.envelope import classify, failure, public_message
from ivrcast.api.errors import BodyTooLarge, BodyTooSlow
from ivrcast.clock import Clock
from ivrcast.config import Settings
from ivrcast.errors import ValidationError

VENDOR_PATHS = ("/api/yunhu", "/", "/api/cdrs")
UPLOAD_ROUTES = {("POST", "/v1/voices"), ("POST", "/console/voices")}
VENDOR_UPLOAD_PATHS = ("/api/yunhu", "/")


@dataclass(frozen=True)
class BodyRules:
    """What a request's body must respect."""

    max_bytes: int
    pause_seconds: float
    deadline_seconds: float


def is_upload(scope: Scope) -> bool:
    """Whether the request may carry a file: only multipart requests to the routes
    that take one (a JSON body to the vendor dispatcher never carries a file)."""
    method, path = scope["method"], scope["path"]
    if (method, path) in UPLOAD_ROUTES:
        return True
    content_type = Headers(scope=scope).get("content-type", "").lower()
    return path in VENDOR_UPLOAD_PATHS and content_type.startswith("multipart/form-data")


def rules_for(scope: Scope, settings: Settings) -> BodyRules:
    server = settings.server
    max_bytes = server.max_body_bytes
    if is_upload(scope):
        max_bytes += settings.limits.max_upload_bytes
    return BodyRules(max_bytes, server.body_timeout_seconds, server.body_deadline_seconds)


def error_response(scope: Scope, exc: ValidationError, clock: Clock) -> Response:
    """`exc` answered in the shape of the interface the request was for, on a
    connection that closes after it (the rest of the body is never read)."""
    entry = classify(exc)
    message = public_message(exc, entry)
    path: str = scope["path"]
    headers = {"connection": "close"}
    if path in VENDOR_PATHS:
        now = int(clock.now().timestamp())
        return JSONResponse(failure(exc, reqtime=now, rsptime=now), headers=headers)
    if path == "/v1" or path.startswith("/v1/"):
        return JSONResponse(
            {"code": entry.code, "msg": message}, status_code=entry.http_status, headers=headers
        )
    return PlainTextResponse(message, status_code=entry.http_status, headers=headers)


def nul_in_target(scope: Scope) -> ValidationError | None:
    """The parameter of the path or query string that holds a NUL character, if any."""
    if "\x00" in scope["path"]:
        return ValidationError("path", "must not contain a NUL character")
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" in query or "\x00" in query:
        for name, value in parse_qsl(query, keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return ValidationError(
                    name.replace("\x00", "") or "query", "must not contain a NUL character"
                )
    return None


class RequestLimits:
    def __init__(self, app: ASGIApp, settings: Settings, clock: Clock) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = nul_in_target(scope)
        rules = rules_for(scope, self.settings)
        declared = Headers(scope=scope).get("content-length", "")
        if refused is None and declared.isdigit() and int(declared) > rules.max_bytes:
            refused = BodyTooLarge(rules.max_bytes)
        if refused is not None:
            await error_response(scope, refused, self.clock)(scope, receive, send)
            return
        await LimitedRequest(self.app, rules, self.clock).run(scope, receive, send)


class LimitedRequest:
    """One request's run of the app, with its body counted and timed."""

    def __init__(self, app: ASGIApp, rules: BodyRules, clock: Clock) -> None:
        self.app = app
        self.rules = rules
        self.clock = clock
        self.received = 0
        self.body_done = False
        self.refused: ValidationError | None = None
        self.started = False
        self.deadline = asyncio.get_running_loop().time() + rules.deadline_seconds

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def limited_receive() -> Message:
            return await self.receive(receive)

        async def guarded_send(message: Message) -> None:
            if self.refused is not None:
                return  # the refusal replaces whatever the route answers
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # Routes turn a failed body read into answers of their own (or raise it on);
            # only the refusal counts.
            if self.refused is None:
                raise
        if self.refused is not None and not self.started:
            await error_response(scope, self.refused, self.clock)(scope, receive, send)

    async def receive(self, receive: Receive) -> Message:
        if self.refused is not None:
            raise self.refused
        if self.body_done:
            return await receive()  # waiting for the disconnect: no deadline
        remaining = self.deadline - asyncio.get_running_loop().time()
        by_deadline = remaining < self.rules.pause_seconds
        try:
            async with asyncio.timeout(max(min(remaining, self.rules.pause_seconds), 0)):
                message = await receive()
        except TimeoutError:
            self.refused = (
                BodyTooSlow(self.rules.deadline_seconds, deadline=True)
                if by_deadline
                else BodyTooSlow(self.rules.pause_seconds, deadline=False)
            )
            raise self.refused from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.rules.max_bytes:
                self.refused = BodyTooLarge(self.rules.max_bytes)
                raise self.refused
            self.body_done = not message.get("more_body", False)
        return message
