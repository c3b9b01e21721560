"""What every request handler needs, built once when the app starts."""

from __future__ import annotations

import asyncio
import functools
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from ivrcast.api import params
from ivrcast.api.auth import account_for_token, authenticate
from ivrcast.api.errors import BadCredentials, BadOperatorToken
from ivrcast.api.throttle import OPERATOR, SignInThrottle
from ivrcast.callbacks.record import record_builder
from ivrcast.clock import Clock
from ivrcast.config import Settings
from ivrcast.recordings import RecordingLinks
from ivrcast.store.accounts import Account
from ivrcast.store.engine import Database
from ivrcast.store.records import RecordBuilder
from ivrcast.voices.pool import TranscodePool

T = TypeVar("T")


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    db: Database
    clock: Clock
    key: bytes
    """The server key: keys the accesskey and token hashes and encrypts the callback
    secrets (`ivrcast.credentials`)."""
    transcoder: TranscodePool = field(default_factory=TranscodePool)
    """Decodes voices in worker processes; `ivrcast.app.create_app` sizes it and shuts it down."""

    @functools.cached_property
    def build_record(self) -> RecordBuilder:
        return record_builder(self.settings, self.key)

    @functools.cached_property
    def recording_links(self) -> RecordingLinks:
        return RecordingLinks.for_settings(self.settings, self.key)

    @functools.cached_property
    def throttle(self) -> SignInThrottle:
        security = self.settings.security
        return SignInThrottle(
            self.db,
            max_failures=security.max_failed_sign_ins,
            window=timedelta(seconds=security.failed_sign_in_window_seconds),
        )

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Run blocking work (the store is synchronous) off the event loop."""
        return await asyncio.to_thread(fn)

    def account_from(self, request_params: params.Params, client_ip: str | None) -> Account:
        """The caller's account, from `token` or from `appid` and `accesskey`. Blocking."""
        now = self.clock.now()
        token = params.optional(request_params, "token")
        if token is not None and not request_params.get("accesskey"):
            with self.db.read() as conn:
                return account_for_token(conn, self.key, token, client_ip=client_ip, now=now)
        appid = params.required(request_params, "appid")
        accesskey = params.required(request_params, "accesskey")
        return self.sign_in(appid, accesskey, client_ip)

    def sign_in(self, appid: str, accesskey: str, client_ip: str | None) -> Account:
        """The account whose appid and accesskey these are, unless this address has
        failed too often for this appid lately (`ivrcast.api.throttle`). Blocking."""
        now = self.clock.now()
        with self.db.read() as conn:
            self.throttle.check(conn, appid=appid, client_ip=client_ip, now=now)
            try:
                return authenticate(
                    conn, self.key, appid=appid, accesskey=accesskey, client_ip=client_ip, now=now
                )
            except BadCredentials as exc:
                refused = exc
        self.throttle.failed(appid=appid, client_ip=client_ip, now=now)
        raise refused

    def check_operator_token(self, given: str, client_ip: str | None) -> None:
        """Raise `BadOperatorToken` unless `given` is the configured operator token (none
        configured: nothing matches), throttled per client address. Blocking."""
        expected = self.settings.security.operator_token
        now = self.clock.now()
        with self.db.read() as conn:
            self.throttle.check(conn, appid=OPERATOR, client_ip=client_ip, now=now)
        if expected and hmac.compare_digest(given.encode(), expected.encode()):
            return
        self.throttle.failed(appid=OPERATOR, client_ip=client_ip, now=now)
        raise BadOperatorToken()
