"""Console sessions: a signed cookie, its expiry, and the CSRF token derived from it.

The cookie holds who signed in, when the session ends, a random session id and a
fingerprint of the credential used (the account's accesskey hash, or the operator
token). It is signed with HMAC-SHA256 under a key derived from the server's secret key,
so nothing is stored server-side and any API process can read it. Because of the
fingerprint, rotating an accesskey (or changing the operator token) ends every session
opened with the old one.

The CSRF token is an HMAC of the session id: every POST must carry it (a hidden form
field, or the `X-CSRF-Token` header for the console's own fetches). A visitor who has not
signed in gets an anonymous session too, so that the sign-in form is protected as well;
signing in replaces its id, so a planted id is worthless (session fixation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

COOKIE_NAME = "ivrcast_console"
ANONYMOUS_MINUTES = 60
"""How long a sign-in form stays usable."""


@dataclass(frozen=True)
class Session:
    sid: str
    account_id: int | None
    """The signed-in account; None for the operator and for anonymous visitors."""
    operator: bool
    fingerprint: str
    expires_at: datetime

    @property
    def signed_in(self) -> bool:
        return self.operator or self.account_id is not None


class SessionKeys:
    """The keys of the console, derived from the server's secret key."""

    def __init__(self, server_key: bytes) -> None:
        # Separate keys for separate purposes: a cookie MAC can never be replayed as a
        # CSRF token or a credential hash, which use the server key differently.
        self._cookie_key = hmac.new(server_key, b"ivrcast console cookie", hashlib.sha256).digest()
        self._csrf_key = hmac.new(server_key, b"ivrcast console csrf", hashlib.sha256).digest()
        self._print_key = hmac.new(server_key, b"ivrcast console print", hashlib.sha256).digest()

    def fingerprint(self, credential: str) -> str:
        """Identifies a credential (hash) without revealing it, for the cookie."""
        return hmac.new(self._print_key, credential.encode(), hashlib.sha256).hexdigest()[:32]

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_matches(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf_token(session), token)

    def encode(self, session: Session) -> str:
        body = json.dumps(
            {
                "sid": session.sid,
                "acct": session.account_id,
                "op": session.operator,
                "fp": session.fingerprint,
                "exp": int(session.expires_at.timestamp()),
            },
            separators=(",", ":"),
        ).encode()
        payload = _b64(body)
        return f"{payload}.{_b64(self._mac(payload))}"

    def decode(self, value: str | None, *, now: datetime) -> Session | None:
        """The session in a cookie, or None when it is absent, forged or expired."""
        if not value or "." not in value:
            return None
        payload, _, mac = value.partition(".")
        try:
            if not hmac.compare_digest(_unb64(mac), self._mac(payload)):
                return None
            data: dict[str, Any] = json.loads(_unb64(payload))
            session = Session(
                sid=str(data["sid"]),
                account_id=None if data["acct"] is None else int(data["acct"]),
                operator=bool(data["op"]),
                fingerprint=str(data["fp"]),
                expires_at=datetime.fromtimestamp(int(data["exp"]), tz=now.tzinfo),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        return session if session.expires_at > now else None

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._cookie_key, payload.encode(), hashlib.sha256).digest()


def new_session(
    *,
    now: datetime,
    minutes: int,
    account_id: int | None = None,
    operator: bool = False,
    fingerprint: str = "",
) -> Session:
    """A session with a fresh id (so a fresh CSRF token)."""
    return Session(
        sid=secrets.token_urlsafe(18),
        account_id=account_id,
        operator=operator,
        fingerprint=fingerprint,
        expires_at=now + timedelta(minutes=minutes),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
