"""Signing in (an account's appid and accesskey, or the operator token) and out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ivrcast.api.errors import TooManyFailedSignIns
from ivrcast.api.forms import read_form
from ivrcast.console.session import (
    ANONYMOUS_MINUTES,
    COOKIE_NAME,
    Session,
    new_session,
)
from ivrcast.console.web import (
    PREFIX,
    CsrfRefused,
    Ctx,
    PostingViewer,
    check_csrf,
    client_ip,
    error_text,
    operator_fingerprint,
    read_session,
    redirect,
    render,
    session_keys,
)
from ivrcast.errors import AuthError, ValidationError

router = APIRouter()


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    ctx = request.app.state.ctx
    response.set_cookie(
        COOKIE_NAME,
        session_keys(request).encode(session),
        max_age=max(1, int((session.expires_at - ctx.clock.now()).total_seconds())),
        path=PREFIX,
        httponly=True,
        samesite="lax",
        # Secure only over HTTPS: a plain-HTTP install on loopback must still work.
        secure=request.url.scheme == "https",
    )


def _safe_next(value: str | None) -> str:
    """Only a path of the console itself, never another site (open redirect)."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//"):
        return value
    return PREFIX + "/"


def _signin_page(
    request: Request,
    session: Session,
    *,
    error: str | None = None,
    status_code: int = 200,
    appid: str = "",
) -> Response:
    ctx = request.app.state.ctx
    response = render(
        request,
        None,
        "signin.html",
        {
            "csrf": session_keys(request).csrf_token(session),
            "error": error,
            "appid": appid,
            "next": _safe_next(request.query_params.get("next")),
            "operator_enabled": bool(ctx.settings.security.operator_token),
            "notice": request.query_params.get("notice"),
        },
        status_code=status_code,
    )
    set_session_cookie(request, response, session)
    return response


def _anonymous(request: Request, ctx: Ctx) -> Session:
    session = read_session(request)
    if session is not None and not session.signed_in:
        return session
    return new_session(now=ctx.clock.now(), minutes=ANONYMOUS_MINUTES)


@router.get("/signin")
async def signin_form(request: Request, ctx: Ctx) -> Response:
    return _signin_page(request, _anonymous(request, ctx))


async def _checked_anonymous(request: Request, ctx: Ctx) -> Session:
    session = read_session(request)
    if session is None:
        raise CsrfRefused()
    await check_csrf(request, session)
    return session


@router.post("/signin")
async def signin(request: Request, ctx: Ctx) -> Response:
    session = await _checked_anonymous(request, ctx)
    form = await read_form(request)
    appid = str(form.get("appid", "")).strip()
    accesskey = str(form.get("accesskey", ""))
    minutes = ctx.settings.security.console_session_minutes

    def check() -> Session:
        if not appid or not accesskey:
            raise ValidationError("appid", "enter both the appid and the accesskey")
        account = ctx.sign_in(appid, accesskey, client_ip(request))
        return new_session(
            now=ctx.clock.now(),
            minutes=minutes,
            account_id=account.id,
            fingerprint=session_keys(request).fingerprint(account.accesskey_hash),
        )

    try:
        signed_in = await ctx.in_thread(check)
    except (AuthError, ValidationError) as exc:
        status, message = error_text(exc)
        page = _signin_page(request, session, error=message, status_code=status, appid=appid)
        return _with_retry_after(page, exc)
    response = RedirectResponse(_safe_next(str(form.get("next", ""))), status_code=303)
    set_session_cookie(request, response, signed_in)
    return response


def _with_retry_after(response: Response, exc: Exception) -> Response:
    if isinstance(exc, TooManyFailedSignIns):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@router.post("/signin/operator")
async def signin_operator(request: Request, ctx: Ctx) -> Response:
    session = await _checked_anonymous(request, ctx)
    form = await read_form(request)
    given = str(form.get("token", ""))
    keys = session_keys(request)
    if not ctx.settings.security.operator_token:
        message = "the operator sign-in is disabled ([security] operator_token is not set)"
        return _signin_page(request, session, error=message, status_code=401)
    try:
        await ctx.in_thread(lambda: ctx.check_operator_token(given, client_ip(request)))
    except AuthError as exc:
        status, message = error_text(exc)
        page = _signin_page(request, session, error=message, status_code=status)
        return _with_retry_after(page, exc)
    fingerprint = operator_fingerprint(ctx, keys)
    assert fingerprint is not None
    signed_in = new_session(
        now=ctx.clock.now(),
        minutes=ctx.settings.security.console_session_minutes,
        operator=True,
        fingerprint=fingerprint,
    )
    response = redirect("/")
    set_session_cookie(request, response, signed_in)
    return response


@router.post("/signout")
async def signout(request: Request, viewer: PostingViewer) -> Response:
    response = redirect("/signin", notice="signed-out")
    response.delete_cookie(COOKIE_NAME, path=PREFIX, httponly=True, samesite="lax")
    return response
