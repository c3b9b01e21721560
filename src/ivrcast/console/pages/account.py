"""Callbacks (the delivery log, replay) and the account's settings (callback URL, rotating
the signing secret and the accesskey)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ivrcast.api.forms import read_form
from ivrcast.console.pages.signin import set_session_cookie
from ivrcast.console.session import new_session
from ivrcast.console.web import (
    Ctx,
    CurrentViewer,
    PostingViewer,
    Viewer,
    account_scope,
    operator_refused,
    page_cursor,
    redirect,
    render,
    session_keys,
)
from ivrcast.credentials import hash_secret, seal_secret
from ivrcast.store.accounts import Account, appids_by_account, update_account
from ivrcast.store.deliveries import DELIVERY_FILTERS, deliveries, delivery_summary
from ivrcast.store.outbox import requeue_deliveries
from ivrcast.store.tokens import revoke_tokens

router = APIRouter()

PAGE_SIZE = 100
REPLAY_FAILING_HOURS = 24


@router.get("/callbacks")
async def delivery_log(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    which = request.query_params.get("show", "all")
    which = which if which in DELIVERY_FILTERS else "all"
    before = page_cursor(request)

    def read() -> dict[str, Any]:
        with ctx.db.read() as conn:
            appids = appids_by_account(conn)
            scope = account_scope(request, viewer, appids)
            rows = deliveries(
                conn,
                scope,
                which=which,
                before_id=before,
                limit=PAGE_SIZE,
            )
            summary = delivery_summary(conn, scope)
        for row in rows:
            row["appid"] = appids.get(row["account_id"], "")
        return {"rows": rows, "summary": summary, "appids": sorted(appids.values())}

    data = await ctx.in_thread(read)
    rows = data["rows"]
    return render(
        request,
        viewer,
        "callbacks.html",
        {
            "page": "callbacks",
            **data,
            "show": which,
            "filters": DELIVERY_FILTERS,
            "older": rows[-1]["id"] if len(rows) == PAGE_SIZE else None,
            "account": request.query_params.get("account", ""),
            "notice": request.query_params.get("notice"),
            "queued": request.query_params.get("queued"),
            "replay_hours": REPLAY_FAILING_HOURS,
        },
    )


@router.post("/callbacks/replay")
async def replay(request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    """Queue deliveries again: one call's (`uuid`), a task's (`task`), or every failing
    delivery of the last day (`failing`). Receivers dedupe on `uuid`."""
    form = await read_form(request)
    uuid = str(form.get("uuid", "")).strip()
    task = str(form.get("task", "")).strip()
    now = ctx.clock.now()

    def write() -> int:
        with ctx.db.write() as conn:
            if uuid:
                return requeue_deliveries(conn, now=now, account_id=viewer.account_id, uuids=[uuid])
            if task:
                return requeue_deliveries(conn, now=now, account_id=viewer.account_id, task_id=task)
            return requeue_deliveries(
                conn,
                now=now,
                account_id=viewer.account_id,
                since=now - timedelta(hours=REPLAY_FAILING_HOURS),
                include_delivered=False,
            )

    queued = await ctx.in_thread(write)
    back = str(form.get("back", ""))
    if back.startswith("/calls/") and uuid:
        return redirect(back, notice="replayed", queued=queued)
    return redirect("/callbacks", notice="replayed", queued=queued)


def _settings_page(
    request: Request,
    viewer: Viewer,
    account: Account,
    *,
    revealed: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    response = render(
        request,
        viewer,
        "settings.html",
        {
            "page": "settings",
            "account": account,
            "revealed": revealed or {},
            "error": error,
            "notice": request.query_params.get("notice"),
        },
        status_code=status_code,
    )
    if revealed:
        # A new secret is shown once: never kept by a cache or the back button.
        response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/settings")
async def settings_page(request: Request, viewer: CurrentViewer) -> Response:
    if viewer.account is None:
        return operator_refused(request, viewer)
    return _settings_page(request, viewer, viewer.account)


def check_callback_url(value: str) -> str | None:
    """Why `value` cannot be a callback URL, or None. Empty clears it."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The callback URL must be an http:// or https:// URL with a host."
    if len(value) > 2000:
        return "The callback URL is longer than 2000 characters."
    return None


@router.post("/settings/callback-url")
async def set_callback_url(request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    if viewer.account is None:
        return operator_refused(request, viewer)
    account = viewer.account
    form = await read_form(request)
    url = str(form.get("callback_url", "")).strip()
    problem = check_callback_url(url)
    if problem:
        return _settings_page(request, viewer, account, error=problem, status_code=400)

    def write() -> None:
        with ctx.db.write() as conn:
            update_account(conn, account.appid, callback_url=url or None)

    await ctx.in_thread(write)
    return redirect("/settings", notice="callback-url")


@router.post("/settings/rotate-secret")
async def rotate_secret(request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    if viewer.account is None:
        return operator_refused(request, viewer)
    appid = viewer.account.appid
    secret = secrets.token_urlsafe(32)

    def write() -> Account:
        with ctx.db.write() as conn:
            return update_account(conn, appid, callback_secret=seal_secret(ctx.key, secret))

    account = await ctx.in_thread(write)
    return _settings_page(request, viewer, account, revealed={"callback_secret": secret})


@router.post("/settings/rotate-accesskey")
async def rotate_accesskey(request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    """A new accesskey, shown once. The account's API tokens and every other console
    session end (their cookies name the old key); this session is renewed."""
    if viewer.account is None:
        return operator_refused(request, viewer)
    appid = viewer.account.appid
    accesskey = secrets.token_urlsafe(24)

    def write() -> Account:
        with ctx.db.write() as conn:
            account = update_account(conn, appid, accesskey_hash=hash_secret(ctx.key, accesskey))
            # API tokens were obtained with the old key: a rotation after a leak must end them.
            revoke_tokens(conn, account.id)
            return account

    account = await ctx.in_thread(write)
    keys = session_keys(request)
    renewed = new_session(
        now=ctx.clock.now(),
        minutes=ctx.settings.security.console_session_minutes,
        account_id=account.id,
        fingerprint=keys.fingerprint(account.accesskey_hash),
    )
    renewed_viewer = Viewer(renewed, account, keys.csrf_token(renewed))
    response = _settings_page(request, renewed_viewer, account, revealed={"accesskey": accesskey})
    set_session_cookie(request, response, renewed)
    return response
