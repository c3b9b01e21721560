"""Throttling password guessing: failed sign-ins per (appid, client address).

Every way in that checks a secret (appid and accesskey on `/api/yunhu`, `/v1` and
`App.Sip_Auth.Login`, the console's sign-in forms, the operator token) counts its
failures here. After `[security] max_failed_sign_ins` failures within
`failed_sign_in_window_seconds`, the pair is refused, even with the right key, until its
oldest failure leaves the window. The key is the pair, so an attacker elsewhere never
locks a customer out of its own servers; the operator token is keyed by address alone.
The count lives in the database (`ivrcast.store.sign_ins`), shared by every API process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request
from fastapi.responses import JSONResponse

from ivrcast.api.envelope import classify, public_message
from ivrcast.api.errors import TooManyFailedSignIns
from ivrcast.store.engine import Connection, Database
from ivrcast.store.sign_ins import recent_failures, record_failure

OPERATOR = ""
"""The appid part of the operator token's key (no appid is empty)."""


@dataclass(frozen=True)
class SignInThrottle:
    db: Database
    max_failures: int
    window: timedelta

    def check(self, conn: Connection, *, appid: str, client_ip: str | None, now: datetime) -> None:
        """Raise `TooManyFailedSignIns` when the pair has used up its failures."""
        count, oldest = recent_failures(
            conn, appid=appid, client_ip=client_ip or "", since=now - self.window
        )
        if count >= self.max_failures and oldest is not None:
            wait = (oldest + self.window - now).total_seconds()
            raise TooManyFailedSignIns(max(1, math.ceil(wait)))

    def failed(self, *, appid: str, client_ip: str | None, now: datetime) -> None:
        """Count a failure of the pair. Blocking (a write transaction of its own)."""
        with self.db.write() as conn:
            record_failure(
                conn,
                appid=appid,
                client_ip=client_ip or "",
                now=now,
                forget_before=now - self.window,
            )


async def throttled_response(request: Request, exc: Exception) -> JSONResponse:
    """`/v1` and other JSON routes: HTTP 429 with `Retry-After`, the body as other errors."""
    assert isinstance(exc, TooManyFailedSignIns)
    entry = classify(exc)
    return JSONResponse(
        {"code": entry.code, "msg": public_message(exc, entry)},
        status_code=entry.http_status,
        headers={"Retry-After": str(exc.retry_after)},
    )
