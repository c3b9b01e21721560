"""Slow clients are cut off: the real app in a real uvicorn server, raw sockets.

Each test waits for the server to close the connection (end of stream), bounded by a
generous safety timeout; the server's own timeouts are short so the waits are too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from api_service import SettingsFactory

from ivrcast.api.http_server import server_config
from ivrcast.app import create_app
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head

HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5
SAFETY = 30.0
"""How long a test waits before it fails: far above the server's timeouts."""


@dataclass
class Server:
    host: str
    port: int

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            yield reader, writer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def server(make_settings: SettingsFactory, tmp_path: Path) -> AsyncIterator[Server]:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db = Database(url)
    upgrade_to_head(db)
    db.dispose()
    settings = make_settings(
        url,
        server={
            "max_body_bytes": 64 * 1024,
            "header_timeout_seconds": HEADER_TIMEOUT,
            "body_timeout_seconds": BODY_TIMEOUT,
        },
    )
    app = create_app(settings, deliver_callbacks=False)
    listener = socket.create_server(("127.0.0.1", 0))
    running = uvicorn.Server(server_config(app, settings, log_level="warning"))
    task = asyncio.create_task(running.serve(sockets=[listener]))
    # The socket listens already: connections wait in its backlog until uvicorn serves.
    yield Server(*listener.getsockname()[:2])
    running.should_exit = True
    await task


async def closed_after(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(SAFETY):
        return await reader.read()


async def reset_or_closed_after(reader: asyncio.StreamReader) -> bytes | None:
    """As `closed_after`; None when the close came as a reset, which TCP sends (and
    which may overtake the answer) when the server closes with some of the request
    still unread, as it must for a body it refuses."""
    try:
        return await closed_after(reader)
    except ConnectionResetError:
        return None


async def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    async with server.connect() as (reader, _writer):
        assert await closed_after(reader) == b""


async def test_headers_sent_partially_are_cut_off(server: Server) -> None:
    async with server.connect() as (reader, writer):
        writer.write(b"GET /v1/voices HTTP/1.1\r\nHost: ivrcast.test\r\nX-Slow: ")
        await writer.drain()
        assert await closed_after(reader) == b""


async def test_a_partial_body_is_answered_408_and_closed(server: Server) -> None:
    async with server.connect() as (reader, writer):
        writer.write(
            b"POST /v1/tasks HTTP/1.1\r\nHost: ivrcast.test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"nationcode"'
        )
        await writer.drain()
        answer = await closed_after(reader)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b'"msg":"body: the request paused for more than 0.5 seconds"' in answer


async def test_a_chunked_body_over_the_limit_is_answered_413_and_closed(server: Server) -> None:
    async with server.connect() as (reader, writer):
        writer.write(
            b"POST /v1/tasks HTTP/1.1\r\nHost: ivrcast.test\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 16 * 1024
        for _ in range(64):  # 1 MiB, far over the 64 KiB limit
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        with contextlib.suppress(ConnectionResetError):
            await writer.drain()
        answer = await reset_or_closed_after(reader)
        assert answer is None or answer.startswith(b"HTTP/1.1 413 ")


async def test_a_prompt_client_keeps_its_connection(server: Server) -> None:
    async with server.connect() as (reader, writer):
        request = b"GET /v1/voices HTTP/1.1\r\nHost: ivrcast.test\r\n\r\n"
        for _ in range(2):
            writer.write(request)
            await writer.drain()
            async with asyncio.timeout(SAFETY):
                head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 401 ")
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)


async def test_a_body_trickling_to_a_route_that_never_reads_it_is_closed(server: Server) -> None:
    async with server.connect() as (reader, writer):
        writer.write(
            b"POST /v1/nowhere HTTP/1.1\r\nHost: ivrcast.test\r\nContent-Length: 60000\r\n\r\n"
        )
        answer = b""
        async with asyncio.timeout(SAFETY):
            while not reader.at_eof():
                # A byte now and then: enough to keep an idle timer from ever firing.
                with contextlib.suppress(ConnectionError):
                    writer.write(b"x")
                    await writer.drain()
                with contextlib.suppress(TimeoutError, ConnectionError):
                    async with asyncio.timeout(HEADER_TIMEOUT):
                        answer += await reader.read(65536)
    assert answer.startswith(b"HTTP/1.1 404 ")
