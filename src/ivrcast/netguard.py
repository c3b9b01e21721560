"""Server-side request forgery guard for URLs a customer gives ivrcast to fetch or call.

`resolve_public` accepts a URL only if it is `http` or `https`, names a host, carries
no user name or password (they would end up in logs, and `http://good@evil/` is a
classic way to mislead a reader), and every address its host resolves to is public.
Any TCP port is allowed: with only public addresses reachable, a port limit would
protect nothing of ours and would break customers serving on `:8080`.

A host that resolves to several addresses is refused if any one is not public, since
the client might connect to any of them. An address is not public when it is loopback,
private (RFC 1918, ULA), link-local (including the 169.254.169.254 cloud metadata
service), unspecified, multicast, shared (CGNAT), reserved or in any other block of the
IANA special-purpose registries (`SPECIAL_PURPOSE`, each with its RFC). IPv6 forms that
embed an IPv4 address (mapped, NAT64, 6to4, Teredo, IPv4-compatible, IPv4-translated)
have that address judged too (Teredo's is obfuscated): only mapped and well-known NAT64
addresses of a public IPv4 address pass, the other forms are refused whatever they
embed. `allow_private` (the `[security] allow_private_urls` switch) lifts all of this
for tests and private deployments.

DNS rebinding: a second lookup at connect time could return a different address than the
one checked. `ResolvedUrl.pinned` therefore gives the request to send to the checked
address itself, with the `Host` header and TLS server name (httpcore's `sni_hostname`
request extension, which also names the certificate to verify) still the host name.
Because the pool then keys connections by address, one client must not reuse a pinned
HTTPS connection for a second host name on the same address: send `Connection: close`,
or use one client per host.

Nothing here is voice-specific: the voice fetcher (`voices.fetch`) and the callback
sender (`callbacks.sender`) both use it, and neither imports the other. Its errors are
`VoiceError`s because the API reports them against the voice parameter; the callback
sender catches them by class.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx

from ivrcast.errors import VoiceError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEMES = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class SpecialBlock:
    """An address block that is not the public Internet, and where that is written."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    kind: str  # what the customer is told: "a private", "a special-purpose (benchmarking)"
    source: str  # the RFC (or registry) that sets the block aside


def _blocks(*rows: tuple[str, str, str]) -> tuple[SpecialBlock, ...]:
    return tuple(SpecialBlock(ipaddress.ip_network(net), kind, src) for net, kind, src in rows)


# The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890), every entry,
# including the few marked globally reachable (anycast relays and AS112 DNS sinks serve
# no voice files), plus multicast and the deprecated or reserved IPv6 ranges. Checked in
# order, so blocks nested in a larger one come first. IPv4-mapped (::ffff:0:0/96,
# RFC 4291) and well-known NAT64 (64:ff9b::/96, RFC 6052) addresses are not listed: they
# reach the IPv4 address they embed, which `refusal_reason` judges instead; 6to4 and
# Teredo addresses have their IPv4 judged for the message, and are refused anyway.
SPECIAL_PURPOSE: tuple[SpecialBlock, ...] = _blocks(
    ("0.0.0.0/8", "an unspecified", 'RFC 791 §3.2, "this network"'),
    ("10.0.0.0/8", "a private", "RFC 1918"),
    ("100.64.0.0/10", "a carrier-grade NAT", "RFC 6598, shared address space"),
    ("127.0.0.0/8", "a loopback", "RFC 1122 §3.2.1.3"),
    ("169.254.0.0/16", "a link-local (or cloud metadata)", "RFC 3927"),
    ("172.16.0.0/12", "a private", "RFC 1918"),
    ("192.0.0.0/24", "a special-purpose (IETF protocol assignments)", "RFC 6890 §2.1"),
    ("192.0.2.0/24", "a special-purpose (documentation, TEST-NET-1)", "RFC 5737"),
    ("192.31.196.0/24", "a special-purpose (AS112-v4)", "RFC 7535"),
    ("192.52.193.0/24", "a special-purpose (AMT)", "RFC 7450"),
    ("192.88.99.0/24", "a special-purpose (6to4 relay anycast)", "RFC 7526"),
    ("192.168.0.0/16", "a private", "RFC 1918"),
    ("192.175.48.0/24", "a special-purpose (AS112 direct delegation)", "RFC 7534"),
    ("198.18.0.0/15", "a special-purpose (benchmarking)", "RFC 2544"),
    ("198.51.100.0/24", "a special-purpose (documentation, TEST-NET-2)", "RFC 5737"),
    ("203.0.113.0/24", "a special-purpose (documentation, TEST-NET-3)", "RFC 5737"),
    ("224.0.0.0/4", "a multicast", "RFC 5771"),
    ("255.255.255.255/32", "a reserved (limited broadcast)", "RFC 919, RFC 8190"),
    ("240.0.0.0/4", "a reserved", "RFC 1112 §4"),
    ("::/128", "an unspecified", "RFC 4291 §2.5.2"),
    ("::1/128", "a loopback", "RFC 4291 §2.5.3"),
    ("::/96", "a reserved (deprecated IPv4-compatible)", "RFC 4291 §2.5.5.1"),
    ("::ffff:0:0:0/96", "a reserved (IPv4-translated)", "RFC 2765 §2.1"),
    ("64:ff9b:1::/48", "a reserved (local-use NAT64)", "RFC 8215"),
    ("100::/64", "a special-purpose (discard-only)", "RFC 6666"),
    ("100:0:0:1::/64", "a special-purpose (dummy prefix)", "RFC 9780"),
    ("2001::/32", "a special-purpose (Teredo)", "RFC 4380, RFC 8190"),
    ("2001:2::/48", "a special-purpose (benchmarking)", "RFC 5180"),
    ("2001:3::/32", "a special-purpose (AMT)", "RFC 7450"),
    ("2001:4:112::/48", "a special-purpose (AS112-v6)", "RFC 7535"),
    ("2001:10::/28", "a special-purpose (ORCHID, deprecated)", "RFC 4843"),
    ("2001:20::/28", "a special-purpose (ORCHIDv2)", "RFC 7343"),
    ("2001:30::/28", "a special-purpose (drone remote ID)", "RFC 9374"),
    ("2001::/23", "a special-purpose (IETF protocol assignments)", "RFC 2928"),
    ("2001:db8::/32", "a special-purpose (documentation)", "RFC 3849"),
    ("2002::/16", "a special-purpose (6to4)", "RFC 3056, RFC 7526"),
    ("2620:4f:8000::/48", "a special-purpose (AS112 direct delegation)", "RFC 7534"),
    ("3fff::/20", "a special-purpose (documentation)", "RFC 9637"),
    ("5f00::/16", "a special-purpose (segment routing SIDs)", "RFC 9602"),
    ("fc00::/7", "a private", "RFC 4193, unique local"),
    ("fe80::/10", "a link-local", "RFC 4291 §2.5.6"),
    ("fec0::/10", "a reserved (deprecated site-local)", "RFC 3879"),
    ("ff00::/8", "a multicast", "RFC 4291 §2.7"),
)
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")  # RFC 4291 §2.4; the rest is reserved
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: IPv4 in the low 32 bits
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 §2.5.5.1
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 §2.1


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

    @property
    def host_header(self) -> str:
        """The `Host` header naming the original host (and port, when not the default)."""
        host_header = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != _SCHEMES[self.url.scheme]:
            host_header = f"{host_header}:{self.port}"
        return host_header

    @property
    def tls_server_name(self) -> str | None:
        """For HTTPS to a host name: the name to send as SNI and verify the certificate
        against; None otherwise (plain HTTP, or an IP literal verified as itself)."""
        if self.url.scheme == "https" and not _is_ip_literal(self.host):
            return self.host
        return None

    def pinned(self, address: IPAddress) -> PinnedRequest:
        """The request target for `address`, one of `addresses`."""
        extensions: dict[str, Any] = {}
        if self.tls_server_name is not None:
            extensions["sni_hostname"] = self.tls_server_name
        return PinnedRequest(
            url=self.url.copy_with(host=str(address)),
            headers={"Host": self.host_header},
            extensions=extensions,
        )


@asynccontextmanager
async def send_pinned(
    client: httpx.AsyncClient,
    resolved: ResolvedUrl,
    method: str,
    *,
    headers: Mapping[str, str],
    content: bytes | None = None,
    timeouts: httpx.Timeout | None = None,
) -> AsyncIterator[httpx.Response]:
    """Send to the first of the checked addresses that accepts a connection, and stream
    the answer, closed on exit. Redirects are never followed: a `Location` is a new URL
    for the guard to judge. `timeouts` None keeps the client's own."""
    for address in resolved.addresses:
        target = resolved.pinned(address)
        request = client.build_request(
            method,
            target.url,
            content=content,
            headers={**headers, **target.headers},
            extensions=target.extensions,
            timeout=timeouts if timeouts is not None else client.timeout,
        )
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError:
            if address == resolved.addresses[-1]:
                raise
            continue
        try:
            yield response
        finally:
            await response.aclose()
        return


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


@functools.lru_cache(maxsize=4096)
def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` is not public, or None when it is. Remembered per address: the
    callback sender asks at every attempt, mostly about the same few addresses."""
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if embedded is not None:
        reason = refusal_reason(embedded)
        if reason is not None:
            return f"{reason}, inside the IPv6 address {address}"
    for block in SPECIAL_PURPOSE:
        if address in block.network:
            return f"{block.kind} address {address} ({block.network}, {block.source})"
    if (
        isinstance(address, ipaddress.IPv6Address)
        and embedded is None
        and address not in _GLOBAL_UNICAST
    ):
        return f"a reserved address {address} (outside 2000::/3, RFC 4291 §2.4)"
    if not address.is_global:
        return f"a special-purpose address {address}"
    return None


async def resolve_public(url: str, *, allow_private: bool) -> ResolvedUrl:
    """Check `url` and resolve its host; refuse it unless every address is public.

    Raises `UrlNotAllowed` (with the reason) or `UnresolvableHost`. With
    `allow_private`, only the URL's form is checked.
    """
    return await resolve_checked(check_url(url), allow_private=allow_private)


async def resolve_checked(target: UrlTarget, *, allow_private: bool) -> ResolvedUrl:
    """`resolve_public` for a URL `check_url` has already accepted (a caller that posts to
    one URL many times parses it once)."""
    parsed, host, port = target
    addresses = await _resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = refusal_reason(address)
            if reason is not None:
                logger.info(
                    "URL refused",
                    extra={"event": "url_refused", "host": host, "address": str(address)},
                )
                raise UrlNotAllowed(str(parsed), f"{host} resolves to {reason}")
    return ResolvedUrl(url=parsed, host=host, port=port, addresses=addresses)


async def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    with contextlib.suppress(ValueError):
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
    """The IPv4 address an IPv6 address carries: mapped, NAT64, 6to4, IPv4-compatible
    (but not :: and ::1) and IPv4-translated. (Teredo's is obfuscated; its whole block is
    refused.)"""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if (address in _IPV4_COMPATIBLE and int(address) > 1) or address in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
