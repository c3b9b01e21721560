"""`fetch_audio` against a real HTTP server on loopback (and `transcode` on what it got)."""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import math
import re
import socket
import struct
import threading
import tracemalloc
import wave
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ivrcast.voices import (
    UrlNotAllowed,
    VoiceFetchFailed,
    VoiceTooLarge,
    fetch_audio,
    transcode,
)


def _wav(seconds: float) -> bytes:
    frames = b"".join(
        struct.pack("<h", round(12000 * math.sin(2 * math.pi * 440 * i / 16000)))
        for i in range(round(seconds * 16000))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(frames)
    return out.getvalue()


WAV = _wav(0.5)
BOMB_SIZE = 128 << 20  # what the bomb inflates to
# 128 MiB of zeros in 128 KiB of gzip, as a server that ignores `identity` could send.
BOMB = zlib.compress(bytes(BOMB_SIZE), 9, wbits=16 + zlib.MAX_WBITS)


class Server:
    """A threaded `http.server` on 127.0.0.1 with scripted routes."""

    def __init__(self) -> None:
        self.release = threading.Event()  # lets stalled handlers finish
        self.stalled = threading.Event()  # set once a handler has started stalling
        self.hosts: list[str] = []
        routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {
            "/voice.wav": lambda h: self._send(h, 200, WAV),
            "/missing.wav": lambda h: self._send(h, 404, b"not here"),
            "/big-declared": lambda h: self._send(h, 200, b"x" * 5000),
            "/big-undeclared": lambda h: self._send(h, 200, b"x" * 5000, length=False),
            "/stall-body": self._stall_body,
            "/stall-headers": self._stall_headers,
            "/to-ftp": lambda h: self._redirect(h, "ftp://127.0.0.1/voice.wav"),
            "/bomb": lambda h: self._send(h, 200, BOMB, encoding="gzip"),
            "/voice.wav.gz": lambda h: self._send(h, 200, gzip.compress(WAV), encoding="gzip"),
            "/voice.wav.deflate": lambda h: self._send(
                h, 200, zlib.compress(WAV), encoding="deflate"
            ),
            "/truncated.gz": lambda h: self._send(
                h, 200, gzip.compress(WAV)[:-100], encoding="gzip"
            ),
            "/voice.wav.br": lambda h: self._send(h, 200, b"not really brotli", encoding="br"),
        }
        for hops in range(1, 6):
            target = "/voice.wav" if hops == 1 else f"/hop{hops - 1}"
            routes[f"/hop{hops}"] = functools.partial(self._redirect, location=target)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hosts.append(self.headers["Host"])
                route = routes.get(self.path)
                if route is None:
                    server._send(self, 404, b"")
                else:
                    route(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output clean

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="voice-http"
        )

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        *,
        length: bool = True,
        encoding: str | None = None,
    ) -> None:
        handler.send_response(status)
        if length:
            handler.send_header("Content-Length", str(len(body)))
        if encoding is not None:
            handler.send_header("Content-Encoding", encoding)
        handler.end_headers()
        # The client may stop reading: that is what a size limit does.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.wfile.write(body)

    @staticmethod
    def _redirect(handler: BaseHTTPRequestHandler, location: str) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _stall_body(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"RIFF")
        handler.wfile.flush()
        self.stalled.set()
        self.release.wait(10)

    def _stall_headers(self, handler: BaseHTTPRequestHandler) -> None:
        self.stalled.set()
        self.release.wait(10)


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server()
    server.thread.start()
    yield server
    server.release.set()
    server.httpd.shutdown()
    server.httpd.server_close()
    server.thread.join()


async def test_fetches_and_transcodes_a_voice(server: Server) -> None:
    body = await fetch_audio(server.url("/voice.wav"), allow_private=True, max_bytes=100_000)
    assert body == WAV
    assert transcode(body).duration_ms == 500
    assert server.hosts == [f"127.0.0.1:{server.port}"]


async def test_host_name_is_sent_though_the_address_is_pinned(server: Server) -> None:
    # `localhost` may resolve to ::1 first, where nothing listens: the next address is used.
    url = server.url("/voice.wav", host="localhost")
    assert await fetch_audio(url, allow_private=True, max_bytes=100_000) == WAV
    assert server.hosts == [f"localhost:{server.port}"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_is_refused_without_allow_private(server: Server, host: str) -> None:
    with pytest.raises(UrlNotAllowed, match="resolves to a loopback address"):
        await fetch_audio(server.url("/voice.wav", host), allow_private=False, max_bytes=100_000)
    assert server.hosts == []


async def test_up_to_three_redirects_are_followed(server: Server) -> None:
    body = await fetch_audio(server.url("/hop3"), allow_private=True, max_bytes=100_000)
    assert body == WAV
    assert len(server.hosts) == 4


async def test_a_fourth_redirect_is_refused(server: Server) -> None:
    with pytest.raises(VoiceFetchFailed, match="more than 3 redirects"):
        await fetch_audio(server.url("/hop4"), allow_private=True, max_bytes=100_000)
    assert len(server.hosts) == 4


async def test_redirect_to_another_scheme_is_refused(server: Server) -> None:
    with pytest.raises(UrlNotAllowed, match="only http and https"):
        await fetch_audio(server.url("/to-ftp"), allow_private=True, max_bytes=100_000)


async def test_not_found_names_the_status(server: Server) -> None:
    with pytest.raises(VoiceFetchFailed, match="the server answered 404 Not Found") as caught:
        await fetch_audio(server.url("/missing.wav"), allow_private=True, max_bytes=100_000)
    assert caught.value.status == 404


@pytest.mark.parametrize("path", ["/big-declared", "/big-undeclared"])
async def test_size_limit(server: Server, path: str) -> None:
    with pytest.raises(VoiceTooLarge, match="larger than the limit of 4096 bytes"):
        await fetch_audio(server.url(path), allow_private=True, max_bytes=4096)
    assert await fetch_audio(server.url(path), allow_private=True, max_bytes=5000) == b"x" * 5000


@pytest.mark.parametrize("path", ["/stall-body", "/stall-headers"])
async def test_total_timeout_bounds_a_stalled_download(server: Server, path: str) -> None:
    with pytest.raises(VoiceFetchFailed, match=re.escape("no complete answer within 0.3 seconds")):
        await fetch_audio(
            server.url(path), allow_private=True, max_bytes=100_000, total_timeout=0.3
        )
    assert server.stalled.is_set()


async def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the socket is closed
    with pytest.raises(VoiceFetchFailed, match="could not connect to the server"):
        await fetch_audio(f"http://127.0.0.1:{port}/a.wav", allow_private=True, max_bytes=100)


async def test_a_gzip_bomb_is_refused_at_the_limit_of_decoded_bytes(server: Server) -> None:
    """The server ignores `Accept-Encoding: identity` and sends 128 KiB of gzip that
    inflates to 128 MiB: refused as too large, having allocated about the limit, not the
    inflated size (httpx alone inflates each received chunk whole before the body can be
    counted: ~64 MiB for a 64 KiB read)."""
    limit = 8 << 20
    tracemalloc.start()
    try:
        with pytest.raises(VoiceTooLarge, match=f"larger than the limit of {limit} bytes"):
            await fetch_audio(server.url("/bomb"), allow_private=True, max_bytes=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit * 1.5, f"{peak} bytes allocated while reading the bomb"


@pytest.mark.parametrize("path", ["/voice.wav.gz", "/voice.wav.deflate"])
async def test_a_compressed_voice_is_decoded_within_the_limit(server: Server, path: str) -> None:
    assert await fetch_audio(server.url(path), allow_private=True, max_bytes=len(WAV)) == WAV
    with pytest.raises(VoiceTooLarge):
        await fetch_audio(server.url(path), allow_private=True, max_bytes=len(WAV) - 1)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/voice.wav.br", "the server sent the body as 'br', which ivrcast does not decode"),
        ("/truncated.gz", "the gzip body ended before its end"),
    ],
)
async def test_undecodable_bodies_are_refused(server: Server, path: str, reason: str) -> None:
    with pytest.raises(VoiceFetchFailed, match=re.escape(reason)):
        await fetch_audio(server.url(path), allow_private=True, max_bytes=100_000)
