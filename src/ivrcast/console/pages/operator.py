"""The operator's pages: accounts (create, edit, disable, expire, a new accesskey) and the
fleet (dialer nodes with their heartbeat, trunks with their live channels and rate).

Only an operator session reaches them (`operator_only`); an account session gets 403.
Every change goes through `account_settings`, as `ivrcast account create|update` does, so
the console and the CLI accept and refuse the same values.
"""

from __future__ import annotations

import secrets
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ivrcast.account_settings import account_changes
from ivrcast.api.forms import read_form
from ivrcast.console.fleet import fleet_view
from ivrcast.console.web import Ctx, CurrentViewer, PostingViewer, Viewer, redirect, render
from ivrcast.credentials import hash_secret
from ivrcast.errors import ValidationError
from ivrcast.store.accounts import (
    Account,
    AccountExists,
    AccountNotFound,
    create_account,
    find_account,
    list_accounts,
    update_account,
)
from ivrcast.store.tokens import revoke_tokens

router = APIRouter()

# The fields of the account form, as `account_settings.account_changes` names them.
FIELDS = (
    "countries",
    "callerids",
    "allowed_ips",
    "max_concurrency",
    "callback_url",
    "expires",
    "default_retries",
    "default_record",
)
_APPID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def operator_only(request: Request, viewer: Viewer) -> Response | None:
    """The refusal an account session gets on an operator page, or None."""
    if viewer.operator:
        return None
    return render(
        request,
        viewer,
        "message.html",
        {"title": "Operator only", "message": "This page is for the operator of the server."},
        status_code=403,
    )


def _zone(ctx: Ctx) -> ZoneInfo:
    return ZoneInfo(ctx.settings.callbacks.timezone)


def _form_values(account: Account | None, zone: ZoneInfo) -> dict[str, str]:
    """The account's settings as the form shows them (and as `account_changes` reads them)."""
    if account is None:
        return {"max_concurrency": "30", "default_retries": "0", "default_record": "0"}
    expires = account.expires_at.astimezone(zone).date().isoformat() if account.expires_at else ""
    return {
        "countries": ", ".join(account.countries),
        "callerids": ", ".join(account.callerids),
        "allowed_ips": ", ".join(account.allowed_ips),
        "max_concurrency": str(account.max_concurrency),
        "callback_url": account.callback_url or "",
        "expires": expires,
        "default_retries": str(account.default_retries),
        "default_record": "1" if account.default_record else "0",
    }


def _account_page(
    request: Request,
    viewer: Viewer,
    *,
    account: Account | None,
    values: dict[str, str],
    error: ValidationError | str | None = None,
    accesskey: str | None = None,
    status_code: int = 200,
) -> Response:
    response = render(
        request,
        viewer,
        "operator_account.html",
        {
            "page": "accounts",
            "account": account,
            "values": values,
            "error": error.message if isinstance(error, ValidationError) else error,
            "error_field": error.param if isinstance(error, ValidationError) else None,
            "accesskey": accesskey,
            "notice": request.query_params.get("notice"),
        },
        status_code=status_code,
    )
    if accesskey:
        # A new accesskey is shown once: never kept by a cache or the back button.
        response.headers["Cache-Control"] = "no-store"
    return response


async def _posted_fields(request: Request) -> dict[str, str]:
    """The form's fields that were sent (an absent one is left as it is)."""
    form = await read_form(request)
    return {name: str(form[name]).strip() for name in ("appid", *FIELDS) if name in form}


@router.get("/accounts")
async def accounts_page(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    if (refused := operator_only(request, viewer)) is not None:
        return refused

    def read() -> list[Account]:
        with ctx.db.read() as conn:
            return list_accounts(conn)

    accounts = await ctx.in_thread(read)
    now = ctx.clock.now()
    return render(
        request,
        viewer,
        "operator_accounts.html",
        {
            "page": "accounts",
            "accounts": accounts,
            "expired": {a.appid for a in accounts if a.expires_at and a.expires_at <= now},
            "notice": request.query_params.get("notice"),
            "appid": request.query_params.get("appid", ""),
        },
    )


@router.get("/accounts/new")
async def new_account_page(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    if (refused := operator_only(request, viewer)) is not None:
        return refused
    return _account_page(request, viewer, account=None, values=_form_values(None, _zone(ctx)))


@router.post("/accounts/new")
async def create_account_action(request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    """A new account with a random accesskey, shown once on the page that answers."""
    if (refused := operator_only(request, viewer)) is not None:
        return refused
    posted = await _posted_fields(request)
    appid = posted.pop("appid", "")
    try:
        if not appid or len(appid) > 64 or not set(appid) <= _APPID_CHARS or appid == "new":
            raise ValidationError("appid", "1 to 64 letters, digits, dots, dashes or underscores")
        values = account_changes({k: v for k, v in posted.items() if v}, _zone(ctx))
    except ValidationError as exc:
        return _account_page(
            request, viewer, account=None, values=posted, error=exc, status_code=400
        )
    accesskey = secrets.token_urlsafe(24)

    def write() -> Account:
        with ctx.db.write() as conn:
            return create_account(
                conn,
                appid=appid,
                accesskey_hash=hash_secret(ctx.key, accesskey),
                now=ctx.clock.now(),
                **values,
            )

    try:
        account = await ctx.in_thread(write)
    except AccountExists:
        error = f"An account {appid!r} exists already."
        return _account_page(
            request, viewer, account=None, values=posted, error=error, status_code=409
        )
    return _account_page(
        request,
        viewer,
        account=account,
        values=_form_values(account, _zone(ctx)),
        accesskey=accesskey,
    )


async def _find(ctx: Ctx, appid: str) -> Account | None:
    def read() -> Account | None:
        with ctx.db.read() as conn:
            return find_account(conn, appid)

    return await ctx.in_thread(read)


def _not_found(request: Request, viewer: Viewer, appid: str) -> Response:
    return render(
        request,
        viewer,
        "message.html",
        {"title": "No such account", "message": f"There is no account {appid!r}."},
        status_code=404,
    )


@router.get("/accounts/{appid}")
async def account_page(request: Request, ctx: Ctx, viewer: CurrentViewer, appid: str) -> Response:
    if (refused := operator_only(request, viewer)) is not None:
        return refused
    account = await _find(ctx, appid)
    if account is None:
        return _not_found(request, viewer, appid)
    return _account_page(request, viewer, account=account, values=_form_values(account, _zone(ctx)))


@router.post("/accounts/{appid}")
async def update_account_action(
    request: Request, ctx: Ctx, viewer: PostingViewer, appid: str
) -> Response:
    """Save the form's fields (the page sends them all: a blank list means "any", a blank
    expiry "never", so what the page shows is what the account has)."""
    if (refused := operator_only(request, viewer)) is not None:
        return refused
    posted = await _posted_fields(request)
    posted.pop("appid", None)
    account = await _find(ctx, appid)
    if account is None:
        return _not_found(request, viewer, appid)
    try:
        values = account_changes(posted, _zone(ctx))
    except ValidationError as exc:
        return _account_page(
            request, viewer, account=account, values=posted, error=exc, status_code=400
        )
    await _update(ctx, appid, **values)
    return redirect(f"/accounts/{appid}", notice="saved")


async def _update(ctx: Ctx, appid: str, **values: Any) -> Account:
    def write() -> Account:
        with ctx.db.write() as conn:
            return update_account(conn, appid, **values)

    return await ctx.in_thread(write)


@router.post("/accounts/{appid}/state")
async def account_state_action(
    request: Request, ctx: Ctx, viewer: PostingViewer, appid: str
) -> Response:
    """`action`: `disable` or `enable` (its requests are refused with 601 while disabled),
    `expire` (expires now: 602 from now on) or `unexpire` (never expires)."""
    if (refused := operator_only(request, viewer)) is not None:
        return refused
    form = await read_form(request)
    action = str(form.get("action", ""))
    changes: dict[str, dict[str, Any]] = {
        "disable": {"disabled": True},
        "enable": {"disabled": False},
        "expire": {"expires_at": ctx.clock.now()},
        "unexpire": {"expires_at": None},
    }
    if action not in changes:
        return render(
            request,
            viewer,
            "message.html",
            {
                "title": "Unknown action",
                "message": "action: give disable, enable, expire or unexpire",
            },
            status_code=400,
        )
    try:
        await _update(ctx, appid, **changes[action])
    except AccountNotFound:
        return _not_found(request, viewer, appid)
    return redirect(f"/accounts/{appid}", notice=action)


@router.post("/accounts/{appid}/accesskey")
async def reset_accesskey_action(
    request: Request, ctx: Ctx, viewer: PostingViewer, appid: str
) -> Response:
    """A new accesskey, shown once. The account's API tokens and console sessions end."""
    if (refused := operator_only(request, viewer)) is not None:
        return refused
    accesskey = secrets.token_urlsafe(24)

    def write() -> Account:
        with ctx.db.write() as conn:
            account = update_account(conn, appid, accesskey_hash=hash_secret(ctx.key, accesskey))
            revoke_tokens(conn, account.id)
            return account

    try:
        account = await ctx.in_thread(write)
    except AccountNotFound:
        return _not_found(request, viewer, appid)
    return _account_page(
        request,
        viewer,
        account=account,
        values=_form_values(account, _zone(ctx)),
        accesskey=accesskey,
    )


@router.get("/fleet")
async def fleet_page(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    if (refused := operator_only(request, viewer)) is not None:
        return refused
    view = await ctx.in_thread(lambda: fleet_view(ctx.db, ctx.settings, now=ctx.clock.now()))
    return render(request, viewer, "operator_fleet.html", {"page": "fleet", "fleet": view})
