"""HTTP Digest authentication for SIP (RFC 7616, RFC 3261 §22), with no I/O.

`Challenge.parse` reads a WWW-Authenticate or Proxy-Authenticate value, `choose`
picks the strongest challenge we can answer, and `authorization` computes the header
value for the retried request. The caller supplies the cnonce, so results are
reproducible (the RFC 7616 §3.9.1 vectors are tests).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from ivrcast.sip.errors import DigestError

ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
}
PREFERENCE = ("SHA-256-SESS", "SHA-256", "MD5-SESS", "MD5")  # strongest first, RFC 7616 §3.7


def _parse_auth_params(text: str) -> dict[str, str]:
    """`a="x, y", b=z` → {"a": "x, y", "b": "z"} (RFC 7235 §2.1 auth-param)."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        start = i
        while i < n and text[i] not in "=, \t":
            i += 1
        name = text[start:i].strip().lower()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=":
            if name:
                raise DigestError(f"auth-param without a value: {name!r}")
            continue
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            value = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            if i >= n:
                raise DigestError("unterminated quoted string in challenge")
            i += 1
            params[name] = "".join(value)
        else:
            start = i
            while i < n and text[i] != ",":
                i += 1
            params[name] = text[start:i].strip()
    return params


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"  # upper-cased
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            raise DigestError(f"unsupported authentication scheme {scheme!r}")
        params = _parse_auth_params(rest)
        if "realm" not in params or "nonce" not in params:
            raise DigestError("challenge without realm or nonce")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=params.get("algorithm", "MD5").upper(),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
        )

    @property
    def supported(self) -> bool:
        qop_ok = not self.qop or "auth" in self.qop or "auth-int" in self.qop
        return self.algorithm in PREFERENCE and qop_ok


def choose(values: list[str]) -> Challenge:
    """The strongest challenge among a response's header values that we can answer."""
    challenges = []
    for value in values:
        try:
            challenges.append(Challenge.parse(value))
        except DigestError:
            continue
    usable = [c for c in challenges if c.supported]
    if not usable:
        raise DigestError(f"no challenge we can answer among {values!r}")
    return min(usable, key=lambda c: PREFERENCE.index(c.algorithm))


def new_cnonce() -> str:
    return secrets.token_hex(16)


def authorization(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """The Authorization / Proxy-Authorization value answering `challenge`."""
    base = challenge.algorithm.removesuffix("-SESS")
    if base not in ALGORITHMS or challenge.algorithm not in PREFERENCE:
        raise DigestError(f"unsupported digest algorithm {challenge.algorithm}")
    h = ALGORITHMS[base]

    def hs(*parts: str) -> str:
        return h(":".join(parts).encode())

    ha1 = hs(username, challenge.realm, password)
    if challenge.algorithm.endswith("-SESS"):
        ha1 = hs(ha1, challenge.nonce, cnonce)  # RFC 7616 §3.4.2
    qop = "auth" if "auth" in challenge.qop else ("auth-int" if challenge.qop else None)
    ha2 = hs(method, uri, h(body)) if qop == "auth-int" else hs(method, uri)
    nc_text = f"{nc:08x}"
    if qop is None:
        # RFC 2617 compatibility (RFC 3261 §22.4): no qop, no cnonce.
        response = hs(ha1, challenge.nonce, ha2)
    else:
        response = hs(ha1, challenge.nonce, nc_text, cnonce, qop, ha2)
    parts = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if qop is not None:
        parts += [f'cnonce="{cnonce}"', f"qop={qop}", f"nc={nc_text}"]
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(parts)
