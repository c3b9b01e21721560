"""A trunk (where calls go, with what credentials) and the URIs of a call through it.

The engine places every call through a `Trunk`; `call_uris` is the one place that turns
a trunk and the dialed and calling numbers into the Request-URI, From and To (RFC 3261
§8.1.1), with an IPv6 host in brackets (RFC 3261 §25.1, `host_in_uri`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Trunk:
    """The carrier's SIP address: the INVITE goes to host:port, and the Request-URI,
    From and To name it."""

    name: str
    host: str
    port: int = 5060
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class CallUris:
    request_uri: str
    from_uri: str
    to_uri: str


def host_in_uri(host: str) -> str:
    """`host` as a SIP URI writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def call_uris(trunk: Trunk, dest: str, caller_id: str) -> CallUris:
    """Request-URI `sip:dest@host:port`; From and To without the port, as carriers expect."""
    host = host_in_uri(trunk.host)
    return CallUris(
        request_uri=f"sip:{dest}@{host}:{trunk.port}",
        from_uri=f"sip:{caller_id}@{host}",
        to_uri=f"sip:{dest}@{host}",
    )
