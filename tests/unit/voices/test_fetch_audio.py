"""`fetch_audio` against an in-memory transport and DNS: pinning, redirects, limits."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from ivrcast.voices import UrlNotAllowed, VoiceFetchFailed, VoiceTooLarge, fetch_audio

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
async def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Sequence[str]]]:
    """Host name -> successive answers; each lookup takes the next one (or repeats the last)."""
    table: dict[str, list[Sequence[str]]] = {}

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = table[host]
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port))
            for a in addresses
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return table


def client_for(handler: Handler, seen: list[httpx.Request]) -> httpx.AsyncClient:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(record))


async def test_request_goes_to_the_checked_address(dns: dict[str, list[Sequence[str]]]) -> None:
    # The second answer is what a rebinding DNS server would give the HTTP client.
    dns["voices.example"] = [["93.184.215.14"], ["127.0.0.1"]]
    seen: list[httpx.Request] = []
    async with client_for(lambda _: httpx.Response(200, content=b"RIFF"), seen) as client:
        body = await fetch_audio(
            "https://voices.example/a.wav", allow_private=False, max_bytes=100, client=client
        )

    assert body == b"RIFF"
    (request,) = seen
    assert request.url == "https://93.184.215.14/a.wav"
    assert request.headers["Host"] == "voices.example"
    assert request.extensions["sni_hostname"] == "voices.example"
    assert request.headers["Connection"] == "close"
    assert request.headers["Accept-Encoding"] == "identity"


async def test_next_address_is_tried_when_one_refuses(
    dns: dict[str, list[Sequence[str]]],
) -> None:
    dns["voices.example"] = [["93.184.215.14", "93.184.215.15"]]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "93.184.215.14":
            raise httpx.ConnectError("Connection refused")
        return httpx.Response(200, content=b"audio")

    seen: list[httpx.Request] = []
    async with client_for(handler, seen) as client:
        body = await fetch_audio(
            "http://voices.example/a.wav", allow_private=False, max_bytes=100, client=client
        )
    assert body == b"audio"
    assert [r.url.host for r in seen] == ["93.184.215.14", "93.184.215.15"]


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://internal.example/secret", "internal.example resolves to a private address"),
        ("http://169.254.169.254/latest/meta-data/", "link-local (or cloud metadata)"),
        ("http://[::1]:8080/", "loopback"),
        ("file:///etc/passwd", "only http and https"),
    ],
)
async def test_redirect_to_a_non_public_target_is_refused(
    dns: dict[str, list[Sequence[str]]], location: str, reason: str
) -> None:
    dns["voices.example"] = [["93.184.215.14"]]
    dns["internal.example"] = [["10.0.0.5"]]
    seen: list[httpx.Request] = []
    redirect = httpx.Response(302, headers={"Location": location})
    async with client_for(lambda _: redirect, seen) as client:
        with pytest.raises(UrlNotAllowed, match=re.escape(reason)):
            await fetch_audio(
                "http://voices.example/a.wav", allow_private=False, max_bytes=100, client=client
            )
    assert len(seen) == 1


async def test_relative_redirects_resolve_against_the_host_name(
    dns: dict[str, list[Sequence[str]]],
) -> None:
    dns["voices.example"] = [["93.184.215.14"]]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a.wav":
            return httpx.Response(301, headers={"Location": "/b/c.wav"})
        if request.url.path == "/b/c.wav":
            return httpx.Response(307, headers={"Location": "d.wav"})
        return httpx.Response(200, content=b"audio")

    seen: list[httpx.Request] = []
    async with client_for(handler, seen) as client:
        body = await fetch_audio(
            "http://voices.example/a.wav", allow_private=False, max_bytes=100, client=client
        )
    assert body == b"audio"
    assert [(r.headers["Host"], r.url.path) for r in seen] == [
        ("voices.example", "/a.wav"),
        ("voices.example", "/b/c.wav"),
        ("voices.example", "/b/d.wav"),
    ]


async def test_declared_length_over_the_limit_is_refused_before_reading(
    dns: dict[str, list[Sequence[str]]],
) -> None:
    dns["voices.example"] = [["93.184.215.14"]]

    async def endless() -> Any:
        while True:
            yield b"x" * 65536

    response = httpx.Response(200, headers={"Content-Length": "1000000000"}, content=endless())
    async with client_for(lambda _: response, []) as client:
        with pytest.raises(VoiceTooLarge, match="larger than the limit of 1000 bytes"):
            await fetch_audio(
                "http://voices.example/a.wav", allow_private=False, max_bytes=1000, client=client
            )


async def test_unknown_host_fails_the_fetch(dns: dict[str, list[Sequence[str]]]) -> None:
    with pytest.raises(VoiceFetchFailed, match=r"nowhere\.example could not be resolved"):
        await fetch_audio("http://nowhere.example/a.wav", allow_private=False, max_bytes=100)


async def test_invalid_redirect_location(dns: dict[str, list[Sequence[str]]]) -> None:
    dns["voices.example"] = [["93.184.215.14"]]
    redirect = httpx.Response(302, headers={"Location": "http://[::1"})
    async with client_for(lambda _: redirect, []) as client:
        with pytest.raises(VoiceFetchFailed, match="Invalid URL in location header"):
            await fetch_audio(
                "http://voices.example/a.wav", allow_private=False, max_bytes=100, client=client
            )
