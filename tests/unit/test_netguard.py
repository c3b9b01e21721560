"""The SSRF guard: which URLs and addresses may be fetched, decided without a network."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from ivrcast.errors import VoiceError
from ivrcast.netguard import (
    SPECIAL_PURPOSE,
    UnresolvableHost,
    UrlNotAllowed,
    check_url,
    refusal_reason,
    resolve_public,
)

FakeDns = Callable[[dict[str, Sequence[str]]], list[str]]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Answer getaddrinfo from a table; return the list of names looked up."""

    def install(table: dict[str, Sequence[str]]) -> list[str]:
        lookups: list[str] = []

        async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
            lookups.append(host)
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (address, port),
                )
                for address in table[host]
            ]

        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
        return lookups

    return install


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local (or cloud metadata)"),
        ("169.254.0.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("fec0::1", "reserved"),
        ("::ffff:10.0.0.1", "private address 10.0.0.1 (10.0.0.0/8, RFC 1918), inside the IPv6"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b:1::1", "reserved"),
        ("192.0.2.1", "special-purpose"),  # TEST-NET-1
        ("198.18.0.1", "special-purpose"),  # benchmarking
        ("2001:db8::1", "special-purpose"),  # documentation
        ("2001::1", "special-purpose"),  # Teredo
    ],
)
def test_refused_addresses(address: str, kind: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert kind in reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/a.wav", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.com/", "only http and https"),
        ("example.com/a.wav", "only http and https"),
        ("http:///a.wav", "names no host"),
        ("http://user:secret@example.com/a.wav", "user name or password"),
        ("http://user@example.com/a.wav", "user name or password"),
        ("http://example.com\\@evil.com/", "user name or password"),
        ("http://example.com:0/", "port 0 is out of range"),
        ("http://example.com:99999/", "port 99999 is out of range"),
        ("http://[::1/", "not a valid URL"),
    ],
)
def test_urls_refused_before_dns(url: str, reason: str) -> None:
    with pytest.raises(UrlNotAllowed, match=re.escape(reason)):
        check_url(url)


def test_check_url_fills_in_the_port() -> None:
    assert check_url("https://Example.COM/x").port == 443
    assert check_url("http://example.com/x").port == 80
    assert check_url("http://bücher.de:8080/").host == "xn--bcher-kva.de"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/a.wav", "127.0.0.1 resolves to a loopback address 127.0.0.1"),
        ("http://localhost:8080/a.wav", "localhost resolves to a loopback address"),
        ("http://[::1]/a.wav", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local (or cloud metadata)"),
        ("http://10.0.0.1/a.wav", "resolves to a private address 10.0.0.1"),
        ("https://192.168.0.10:8443/a.wav", "private"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://100.64.1.1/", "carrier-grade NAT"),
        ("http://224.0.0.1/", "multicast"),
        # Shorthand and decimal forms are resolved by the C library, then judged.
        ("http://2130706433/", "loopback address 127.0.0.1"),
        ("http://127.1/", "loopback address 127.0.0.1"),
        ("http://0x7f.0.0.1/", "loopback address 127.0.0.1"),
    ],
)
async def test_non_public_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        await resolve_public(url, allow_private=False)
    assert reason in str(caught.value)
    assert isinstance(caught.value, VoiceError)


@pytest.mark.parametrize(
    "url",
    ["http://8.8.8.8/a.wav", "https://1.1.1.1:8443/a.mp3", "http://[2606:4700:4700::1111]/x"],
)
async def test_public_literal_urls_are_allowed(url: str) -> None:
    resolved = await resolve_public(url, allow_private=False)
    assert [str(a) for a in resolved.addresses] == [httpx.URL(url).host]


async def test_allow_private_lifts_the_address_check() -> None:
    resolved = await resolve_public("http://127.0.0.1:8080/a.wav", allow_private=True)
    assert resolved.addresses == (ipaddress.ip_address("127.0.0.1"),)
    assert resolved.port == 8080


async def test_allow_private_still_checks_the_url() -> None:
    with pytest.raises(UrlNotAllowed, match="only http and https"):
        await resolve_public("file:///etc/passwd", allow_private=True)


async def test_any_private_address_among_several_refuses(fake_dns: FakeDns) -> None:
    fake_dns({"mixed.example": ["8.8.8.8", "10.1.2.3"]})
    with pytest.raises(
        UrlNotAllowed, match=r"mixed.example resolves to a private address 10.1.2.3"
    ):
        await resolve_public("http://mixed.example/a.wav", allow_private=False)


async def test_all_addresses_are_kept_in_resolver_order(fake_dns: FakeDns) -> None:
    fake_dns({"cdn.example": ["2606:4700::1", "8.8.8.8", "8.8.8.8"]})
    resolved = await resolve_public("http://cdn.example/a.wav", allow_private=False)
    assert [str(a) for a in resolved.addresses] == ["2606:4700::1", "8.8.8.8"]


async def test_unresolvable_host(fake_dns: FakeDns) -> None:
    fake_dns({})
    with pytest.raises(UnresolvableHost, match=r"nowhere\.example could not be resolved"):
        await resolve_public("http://nowhere.example/a.wav", allow_private=False)


async def test_pinned_request_keeps_host_name_and_tls_name(fake_dns: FakeDns) -> None:
    fake_dns({"voices.example": ["8.8.8.8"], "v6.example": ["2606:4700::1"]})

    https = await resolve_public("https://voices.example/a.wav?sig=1", allow_private=False)
    pinned = https.pinned(https.addresses[0])
    assert str(pinned.url) == "https://8.8.8.8/a.wav?sig=1"
    assert pinned.headers == {"Host": "voices.example"}
    assert pinned.extensions == {"sni_hostname": "voices.example"}

    http = await resolve_public("http://v6.example:8080/a.wav", allow_private=False)
    pinned = http.pinned(http.addresses[0])
    assert str(pinned.url) == "http://[2606:4700::1]:8080/a.wav"
    assert pinned.headers == {"Host": "v6.example:8080"}
    assert pinned.extensions == {}

    literal = await resolve_public("https://[2606:4700::1]:8443/", allow_private=False)
    pinned = literal.pinned(literal.addresses[0])
    assert pinned.headers == {"Host": "[2606:4700::1]:8443"}
    assert pinned.extensions == {}  # an address is not a TLS server name


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        # IPv4 special-purpose registry (RFC 6890 and its updates)
        ("192.0.0.8", "IETF protocol assignments"),  # IPv4 dummy address, RFC 7600
        ("192.0.0.170", "IETF protocol assignments"),  # NAT64 discovery, RFC 7050
        ("192.31.196.1", "AS112-v4"),
        ("192.52.193.1", "AMT"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("192.175.48.1", "AS112 direct delegation"),
        ("198.19.255.255", "benchmarking"),
        ("198.51.100.7", "TEST-NET-2"),
        ("203.0.113.7", "TEST-NET-3"),
        ("255.255.255.255", "limited broadcast"),
        # IPv6 special-purpose registry
        ("100::1", "discard-only"),
        ("100:0:0:1::1", "dummy prefix"),
        ("2001:2::1", "benchmarking"),
        ("2001:3::1", "AMT"),
        ("2001:4:112::1", "AS112-v6"),
        ("2001:10::1", "ORCHID"),
        ("2001:20::1", "ORCHIDv2"),
        ("2001:30::1", "drone remote ID"),
        ("2001:1::1", "IETF protocol assignments"),  # PCP anycast, RFC 7723
        ("2620:4f:8000::1", "AS112 direct delegation"),
        ("3fff::1", "documentation"),
        ("5f00::1", "segment routing"),
        ("4000::1", "outside 2000::/3"),  # unallocated
        # IPv6 forms that embed an IPv4 address: judged by it, or refused outright
        ("::127.0.0.1", "loopback address 127.0.0.1"),  # IPv4-compatible
        ("::10.1.2.3", "private address 10.1.2.3"),
        ("::8.8.8.8", "deprecated IPv4-compatible"),
        ("::ffff:0:127.0.0.1", "loopback address 127.0.0.1"),  # IPv4-translated (SIIT)
        ("::ffff:0:8.8.8.8", "IPv4-translated"),
        ("64:ff9b::127.0.0.1", "loopback address 127.0.0.1"),  # NAT64
        ("64:ff9b::10.0.0.1", "private address 10.0.0.1"),
        ("64:ff9b::100.64.0.1", "carrier-grade NAT"),
        ("64:ff9b::192.0.2.1", "TEST-NET-1"),
        ("2002:a00:1::1", "private address 10.0.0.1"),  # 6to4
        ("2002:808:808::1", "6to4"),  # 6to4 of a public address: the relay is deprecated
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),  # RFC 4380's example
        ("2001:0:7f00:1:0:0:80ff:fffe", "Teredo"),  # server 127.0.0.1, client 127.0.0.1
    ],
)
def test_special_purpose_blocks_and_embedded_ipv4_are_refused(address: str, kind: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert kind in reason


def test_every_block_of_the_table_is_refused_at_both_ends() -> None:
    """Order matters in the table (nested blocks first): nothing in it slips through."""
    for block in SPECIAL_PURPOSE:
        for address in (block.network.network_address, block.network.broadcast_address):
            assert refusal_reason(address) is not None, (block, address)
        assert block.source.startswith("RFC")


async def test_allow_private_lifts_the_special_purpose_check_too() -> None:
    for literal in ("[::127.0.0.1]", "[64:ff9b::10.0.0.1]", "198.18.0.1", "[2001:db8::1]"):
        url = f"http://{literal}/a.wav"
        with pytest.raises(UrlNotAllowed):
            await resolve_public(url, allow_private=False)
        assert (await resolve_public(url, allow_private=True)).addresses
