"""`App.Sip_Auth.Login`: a token for the vendor's token-based services."""

from __future__ import annotations

from typing import Any

from ivrcast.api import params
from ivrcast.api.auth import issue_token
from ivrcast.api.context import ApiContext


async def login(ctx: ApiContext, form: params.Params, client_ip: str | None) -> dict[str, Any]:
    appid = params.required(form, "appid")
    accesskey = params.required(form, "accesskey")
    ttl = ctx.settings.security.token_ttl_hours

    def write() -> tuple[str, int]:
        account = ctx.sign_in(appid, accesskey, client_ip)
        now = ctx.clock.now()
        with ctx.db.write() as conn:
            token, expires_at = issue_token(conn, ctx.key, account, now=now, ttl_hours=ttl)
        return token, int(expires_at.timestamp())

    token, expires = await ctx.in_thread(write)
    return {"status": 0, "desc": "Login successful", "token": token, "expiretime": expires}
