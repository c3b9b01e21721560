"""Signed, expiring links to a recording, like a presigned object URL.

`sig` is HMAC-SHA256, under a key derived from the server key, over the call uuid and the
expiry (epoch seconds), so a link names one recording until one moment and cannot be
bent to another call or a later time. Every API node with the same server key checks
it without the database.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from ivrcast.config import Settings

PATH = "/v1/recordings/"


def _link_key(server_key: bytes) -> bytes:
    # A key of its own: a link signature is never valid as any other of the server's MACs.
    return hmac.new(server_key, b"ivrcast recording links v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class RecordingLinks:
    base_url: str  # `[server] public_url`, without a trailing slash
    server_key: bytes
    valid_for: timedelta

    @classmethod
    def for_settings(cls, settings: Settings, server_key: bytes) -> RecordingLinks:
        """Links to `[server] public_url`, valid `[recordings] link_days`."""
        return cls(
            base_url=settings.server.base_url,
            server_key=server_key,
            valid_for=timedelta(days=settings.recordings.link_days),
        )

    def signature(self, call_uuid: str, expires: int) -> str:
        message = f"{call_uuid}.{expires}".encode()
        return hmac.new(_link_key(self.server_key), message, hashlib.sha256).hexdigest()

    def url(self, call_uuid: str, ended_at: datetime) -> str:
        """The link put in the call's record: valid `valid_for` after the call ended."""
        expires = int((ended_at + self.valid_for).timestamp())
        query = urlencode({"expires": expires, "sig": self.signature(call_uuid, expires)})
        return f"{self.base_url}{PATH}{call_uuid}?{query}"

    def check(self, call_uuid: str, expires: str, sig: str, *, now: datetime) -> bool:
        """Whether `sig` signs `call_uuid` until `expires`, and that time is still ahead."""
        if not expires.isdigit() or len(expires) > 12:
            return False
        good = hmac.compare_digest(self.signature(call_uuid, int(expires)), sig)
        return good and int(expires) > now.timestamp()
