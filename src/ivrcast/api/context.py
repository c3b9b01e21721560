"""What every request handler needs, built once when the app starts."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from zoneinfo import ZoneInfo

from ivrcast.api import params
from ivrcast.api.auth import account_for_token, authenticate
from ivrcast.callbacks.record import build_call_record
from ivrcast.clock import Clock
from ivrcast.config import Settings
from ivrcast.store.accounts import Account
from ivrcast.store.engine import Database
from ivrcast.store.records import RecordBuilder

T = TypeVar("T")


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    db: Database
    clock: Clock
    key: bytes
    """Keys the accesskey and token hashes (`ivrcast.credentials`)."""

    @functools.cached_property
    def build_record(self) -> RecordBuilder:
        return functools.partial(
            build_call_record, timezone=ZoneInfo(self.settings.callbacks.timezone)
        )

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Run blocking work (the store is synchronous) off the event loop."""
        return await asyncio.to_thread(fn)

    def account_from(self, request_params: params.Params, client_ip: str | None) -> Account:
        """The caller's account, from `token` or from `appid` and `accesskey`. Blocking."""
        now = self.clock.now()
        token = params.optional(request_params, "token")
        with self.db.read() as conn:
            if token is not None and not request_params.get("accesskey"):
                return account_for_token(conn, self.key, token, client_ip=client_ip, now=now)
            appid = params.required(request_params, "appid")
            accesskey = params.required(request_params, "accesskey")
            return authenticate(
                conn, self.key, appid=appid, accesskey=accesskey, client_ip=client_ip, now=now
            )
