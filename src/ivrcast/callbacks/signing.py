"""The `X-Ivrcast-Signature` header: proof that a callback came from ivrcast, unaltered.

    X-Ivrcast-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">

`t` is the signing time and `v1` the lowercase hex HMAC-SHA256, keyed with the account's
callback secret (UTF-8), of the bytes `<t>.<body>`: the body exactly as sent. Binding `t`
into the MAC lets a receiver refuse a captured request replayed later (`tolerance`). A
receiver accepts the header when any `v1` matches, so a future scheme or a second secret
can be added beside the first without breaking it; unknown keys are ignored.

Test vector: body `{"uuid":"a"}`, secret `s3cret`, t 1700000000 give v1 =
76727f74bf7df71e1220a3129e314ff14e638a86af19ad15da38272d0732c444.
"""

from __future__ import annotations

import hashlib
import hmac

from ivrcast.errors import CallbackError

HEADER = "X-Ivrcast-Signature"
DEFAULT_TOLERANCE = 300.0
"""Seconds a receiver should accept between `t` and its own clock, either way."""


class InvalidSignature(CallbackError):
    """The callback signature does not match."""


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, *, timestamp: int) -> str:
    """The value of the `X-Ivrcast-Signature` header for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={signature(body, secret, timestamp)}"


def verify(
    header: str,
    body: bytes,
    secret: str,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> int:
    """Check a received header against the raw body; return its timestamp.

    `now` is the receiver's time in Unix seconds. Raises `InvalidSignature` (saying why)
    when the header is malformed, `t` is more than `tolerance` seconds from `now`, or no
    `v1` matches.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isdigit():
                raise InvalidSignature(f"the timestamp {value!r} is not a number")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None:
        raise InvalidSignature("the header has no timestamp (t=)")
    if not candidates:
        raise InvalidSignature("the header has no v1 signature")
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature(
            f"the timestamp is {now - timestamp:+.0f} s from now, beyond {tolerance:g} s"
        )
    expected = signature(body, secret, timestamp)
    # compare_digest: the time taken reveals nothing about how close a forgery came.
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise InvalidSignature("no v1 signature matches the body")
    return timestamp
