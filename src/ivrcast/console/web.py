"""What every console page shares: who is looking, CSRF checks, rendering, errors.

A request's viewer is resolved from its session cookie on every request (one primary-key
read), so a disabled account, an expired one, a rotated accesskey or a changed operator
token take effect at once, not when the cookie runs out.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ivrcast.api.auth import check_account
from ivrcast.api.context import ApiContext
from ivrcast.api.envelope import classify, public_message
from ivrcast.api.forms import read_form
from ivrcast.api.params import MAX_INTEGER, Params
from ivrcast.api.services.calls import instant
from ivrcast.console.session import COOKIE_NAME, Session, SessionKeys
from ivrcast.credentials import hash_secret
from ivrcast.errors import AuthError, ValidationError
from ivrcast.store.accounts import Account, AccountNotFound, get_account

logger = logging.getLogger(__name__)

PREFIX = "/console"
NO_ACCOUNT = 0
"""An account id no row has (ids start at 1)."""
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, streams answer 401."""

    def __init__(self, next_url: str | None) -> None:
        self.next_url = next_url


class CsrfRefused(Exception):
    """A POST without the session's CSRF token."""


@dataclass(frozen=True)
class SessionContext(ApiContext):
    """The API context with the account already known from the session, so the API's
    service functions (validation included) serve the console unchanged."""

    account: Account | None = None

    def account_from(self, request_params: Params, client_ip: str | None) -> Account:
        assert self.account is not None, "only account sessions reach the API services"
        return self.account


@dataclass(frozen=True)
class Viewer:
    session: Session
    account: Account | None
    """None: the operator."""
    csrf: str

    @property
    def account_id(self) -> int | None:
        return None if self.account is None else self.account.id

    @property
    def operator(self) -> bool:
        return self.account is None

    @property
    def label(self) -> str:
        return "operator" if self.account is None else self.account.appid


def api_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def session_keys(request: Request) -> SessionKeys:
    keys: SessionKeys = request.app.state.console_keys
    return keys


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def read_session(request: Request) -> Session | None:
    ctx = api_context(request)
    return session_keys(request).decode(request.cookies.get(COOKIE_NAME), now=ctx.clock.now())


def operator_fingerprint(ctx: ApiContext, keys: SessionKeys) -> str | None:
    token = ctx.settings.security.operator_token
    return None if not token else keys.fingerprint(hash_secret(ctx.key, token))


def _resolve(ctx: ApiContext, keys: SessionKeys, session: Session, ip: str | None) -> Viewer | None:
    csrf = keys.csrf_token(session)
    if session.operator:
        if session.fingerprint != operator_fingerprint(ctx, keys):
            return None
        return Viewer(session, None, csrf)
    if session.account_id is None:
        return None
    try:
        with ctx.db.read() as conn:
            account = get_account(conn, session.account_id)
        if account.disabled or session.fingerprint != keys.fingerprint(account.accesskey_hash):
            return None
        check_account(account, client_ip=ip, now=ctx.clock.now())
    except (AccountNotFound, AuthError):
        return None
    return Viewer(session, account, csrf)


async def current_viewer(request: Request) -> Viewer:
    session = read_session(request)
    viewer = None
    if session is not None and session.signed_in:
        ctx = api_context(request)
        keys = session_keys(request)
        viewer = await ctx.in_thread(lambda: _resolve(ctx, keys, session, client_ip(request)))
    if viewer is None:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(wanted if request.method == "GET" else None)
    return viewer


async def posting_viewer(request: Request) -> AsyncIterator[Viewer]:
    """The viewer of a POST, after its CSRF token has been checked. The form is closed
    after the request, so that uploaded files' temporary copies are removed at once."""
    viewer = await current_viewer(request)
    try:
        await check_csrf(request, viewer.session)
        yield viewer
    finally:
        await request.close()


async def check_csrf(request: Request, session: Session) -> None:
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        form = await read_form(request)
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if not session_keys(request).csrf_matches(session, token):
        raise CsrfRefused()


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
PostingViewer = Annotated[Viewer, Depends(posting_viewer)]
Ctx = Annotated[ApiContext, Depends(api_context)]


def for_account(ctx: ApiContext, viewer: Viewer) -> SessionContext:
    return SessionContext(
        settings=ctx.settings,
        db=ctx.db,
        clock=ctx.clock,
        key=ctx.key,
        transcoder=ctx.transcoder,
        account=viewer.account,
    )


def render(
    request: Request,
    viewer: Viewer | None,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> Response:
    templates: Jinja2Templates = request.app.state.console_templates
    return templates.TemplateResponse(
        request,
        template,
        {"viewer": viewer, "csrf": viewer.csrf if viewer else "", **(context or {})},
        status_code=status_code,
    )


def redirect(path: str, **query: str | int) -> RedirectResponse:
    """A 303 (POST, then GET) to a console path, with an optional notice code."""
    url = PREFIX + path
    if query:
        url += "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())
    return RedirectResponse(url, status_code=303)


def error_text(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and the message to show for an error, worded as the API words it."""
    entry = classify(exc)
    return entry.http_status, public_message(exc, entry)


def local_time(value: datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def make_templates(zone_name: str) -> Jinja2Templates:
    """The page templates, showing times in the configured zone (`[callbacks] timezone`)."""
    templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
    zone = ZoneInfo(zone_name)
    templates.env.filters["localtime"] = lambda value: local_time(value, zone)
    templates.env.globals["zone_name"] = zone_name
    templates.env.globals["PREFIX"] = PREFIX
    return templates


def page_cursor(request: Request, name: str = "before") -> int | None:
    """A row id to page from, or None when the query has none the database can hold
    (as every console filter, one it cannot read is ignored)."""
    raw = request.query_params.get(name, "")
    return int(raw) if raw.isdigit() and int(raw) <= MAX_INTEGER else None


def page_instant(request: Request, name: str = "before") -> datetime | None:
    """An instant to page from (ISO 8601 with a zone, within the bounds the API's
    filters have), or None when the query has none to read."""
    try:
        return instant(request.query_params, name)
    except ValidationError:
        return None


def account_scope(request: Request, viewer: Viewer, appids: dict[int, str]) -> int | None:
    """The account whose rows to show: the viewer's own, or the one an operator picked
    (`?account=APPID`; none picked: every account)."""
    if viewer.account is not None:
        return viewer.account.id
    wanted = request.query_params.get("account")
    if not wanted:
        return None
    # An unknown appid shows nothing, rather than silently every account's rows.
    return next((i for i, appid in appids.items() if appid == wanted), NO_ACCOUNT)


def not_found(request: Request, viewer: Viewer, message: str) -> Response:
    return render(
        request, viewer, "message.html", {"title": "Not found", "message": message}, status_code=404
    )


def operator_refused(request: Request, viewer: Viewer) -> Response:
    return render(
        request,
        viewer,
        "message.html",
        {
            "title": "Accounts only",
            "message": "The operator sees every account but acts for none: sign in with "
            "the account's appid and accesskey to send broadcasts or change its settings.",
        },
        status_code=403,
    )
