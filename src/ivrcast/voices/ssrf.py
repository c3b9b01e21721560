"""Server-side request forgery guard for URLs a customer gives ivrcast to fetch or call.

`resolve_public` accepts a URL only if it is `http` or `https`, names a host, carries
no user name or password (they would end up in logs, and `http://good@evil/` is a
classic way to mislead a reader), and every address its host resolves to is public.
Any TCP port is allowed: with only public addresses reachable, a port limit would
protect nothing of ours and would break customers serving on `:8080`.

A host that resolves to several addresses is refused if any one is not public, since
the client might connect to any of them. An address is not public when it is loopback,
private (RFC 1918, ULA), link-local (including the 169.254.169.254 cloud metadata
service), unspecified, multicast, shared (CGNAT), reserved or otherwise special-purpose;
IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4) are judged by that address
(Teredo and other IETF ranges are refused as special-purpose). `allow_private` (the
`[security] allow_private_urls` switch) lifts all of this for tests and private
deployments.

DNS rebinding: a second lookup at connect time could return a different address than the
one checked. `ResolvedUrl.pinned` therefore gives the request to send to the checked
address itself, with the `Host` header and TLS server name (httpcore's `sni_hostname`
request extension, which also names the certificate to verify) still the host name.
Because the pool then keys connections by address, one client must not reuse a pinned
HTTPS connection for a second host name on the same address: send `Connection: close`,
or use one client per host.

Nothing here is voice-specific; the callback sender uses it for callback URLs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx

from ivrcast.errors import VoiceError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEMES = {"http": 80, "https": 443}

# (what the customer is told, networks). Checked in order; `_special_purpose` catches
# whatever else the IANA special-purpose registries keep off the public Internet.
_REFUSED: tuple[tuple[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]], ...] = (
    ("an unspecified", (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128"))),
    ("a loopback", (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))),
    (
        "a private",
        (
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("172.16.0.0/12"),
            ipaddress.ip_network("192.168.0.0/16"),
            ipaddress.ip_network("fc00::/7"),
        ),
    ),
    (
        "a link-local (or cloud metadata)",
        (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10")),
    ),
    ("a carrier-grade NAT", (ipaddress.ip_network("100.64.0.0/10"),)),
    ("a multicast", (ipaddress.ip_network("224.0.0.0/4"), ipaddress.ip_network("ff00::/8"))),
    (
        "a reserved",
        (
            ipaddress.ip_network("240.0.0.0/4"),
            ipaddress.ip_network("fec0::/10"),
            # Local-use NAT64 (RFC 8215): translates to addresses of the local network.
            ipaddress.ip_network("64:ff9b:1::/48"),
        ),
    ),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: IPv4 in the low 32 bits


class UrlNotAllowed(VoiceError):
    """The URL may not be fetched."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"URL not allowed: {reason}")


class UnresolvableHost(VoiceError):
    """The URL's host name has no address."""

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(f"the host {host} could not be resolved: {reason}")


class UrlTarget(NamedTuple):
    """A URL that passed the checks needing no DNS."""

    url: httpx.URL
    host: str
    """The host as sent on the wire: IDNA-encoded name, or IP literal without brackets."""
    port: int
    """The port, the scheme's default filled in."""


@dataclass(frozen=True, slots=True)
class PinnedRequest:
    """Where to send a request so that it reaches one checked address."""

    url: httpx.URL
    """The URL with the checked address in place of the host name."""
    headers: dict[str, str]
    """`Host`, naming the original host (and port, when not the default)."""
    extensions: dict[str, Any] = field(default_factory=dict)
    """httpx request extensions: `sni_hostname` for HTTPS to a host name."""


@dataclass(frozen=True, slots=True)
class ResolvedUrl:
    """A URL that passed the guard, with the addresses its host resolved to."""

    url: httpx.URL
    host: str
    """The host as sent on the wire: IDNA-encoded name, or IP literal without brackets."""
    port: int
    addresses: tuple[IPAddress, ...]
    """Every address the host resolved to, in resolver order; all passed the check."""

    def pinned(self, address: IPAddress) -> PinnedRequest:
        """The request target for `address`, one of `addresses`."""
        default_port = _SCHEMES[self.url.scheme]
        host_header = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != default_port:
            host_header = f"{host_header}:{self.port}"
        extensions: dict[str, Any] = {}
        if self.url.scheme == "https" and not _is_ip_literal(self.host):
            extensions["sni_hostname"] = self.host
        return PinnedRequest(
            url=self.url.copy_with(host=str(address)),
            headers={"Host": host_header},
            extensions=extensions,
        )


def check_url(url: str) -> UrlTarget:
    """Check what can be checked without DNS; return the parsed URL, host and port."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UrlNotAllowed(url, f"it is not a valid URL ({exc})") from exc
    if parsed.scheme not in _SCHEMES:
        raise UrlNotAllowed(url, "only http and https URLs can be fetched")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UrlNotAllowed(url, "it names no host")
    if parsed.userinfo:
        raise UrlNotAllowed(url, "it must not contain a user name or password")
    port = parsed.port if parsed.port is not None else _SCHEMES[parsed.scheme]
    if not 0 < port < 65536:
        raise UrlNotAllowed(url, f"port {port} is out of range")
    return UrlTarget(parsed, host, port)


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` is not public, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal_reason(embedded)
            return None if reason is None else f"{reason} (inside the IPv6 address {address})"
    for kind, networks in _REFUSED:
        if any(address in network for network in networks):
            return f"{kind} address {address}"
    if not address.is_global:
        return f"a special-purpose address {address}"
    return None


async def resolve_public(url: str, *, allow_private: bool) -> ResolvedUrl:
    """Check `url` and resolve its host; refuse it unless every address is public.

    Raises `UrlNotAllowed` (with the reason) or `UnresolvableHost`. With
    `allow_private`, only the URL's form is checked.
    """
    parsed, host, port = check_url(url)
    addresses = await _resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = refusal_reason(address)
            if reason is not None:
                logger.info(
                    "URL refused",
                    extra={"event": "url_refused", "host": host, "address": str(address)},
                )
                raise UrlNotAllowed(url, f"{host} resolves to {reason}")
    return ResolvedUrl(url=parsed, host=host, port=port, addresses=addresses)


async def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    if _is_ip_literal(host):
        return (ipaddress.ip_address(host),)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHost(host, str(exc)) from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableHost(host, "no address found")
    return tuple(addresses)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
