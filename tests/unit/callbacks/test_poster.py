"""`CallbackPoster` against scripted HTTP servers on loopback (plain and TLS): answers
read within their limit, connections kept alive only when that is safe, and the one
retry of a kept connection the server closed as the request went out."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ivrcast.callbacks.poster import CallbackPoster, ConnectError, ProtocolError
from ivrcast.netguard import IPAddress, ResolvedUrl

LOOPBACK = ipaddress.ip_address("127.0.0.1")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"


@dataclass
class Request:
    connection: int
    head: bytes
    body: bytes


Script = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]
"""Answers one request; it may write anything, and close the connection."""


async def answer_ok(_request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(OK)


@dataclass
class Server:
    """An HTTP/1.1 server whose every answer is raw bytes from the test's script."""

    script: Script = answer_ok
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                request = Request(connection, head, await reader.readexactly(length))
                self.requests.append(request)
                await self.script(request, writer)
                if writer.is_closing():
                    return
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serving(Server()) as running:
        yield running


def serving(server: Server, tls: ssl.SSLContext | None = None) -> _Serving:
    return _Serving(server, tls)


class _Serving:
    def __init__(self, server: Server, tls: ssl.SSLContext | None) -> None:
        self._server = server
        self._tls = tls
        self._listener: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._listener = await asyncio.start_server(
            self._server.serve, "127.0.0.1", 0, ssl=self._tls
        )
        self._server.port = self._listener.sockets[0].getsockname()[1]
        return self._server

    async def __aexit__(self, *_exc: object) -> None:
        assert self._listener is not None
        self._listener.close()
        await self._listener.wait_closed()


def resolved(
    port: int,
    *,
    host: str = "127.0.0.1",
    scheme: str = "http",
    addresses: tuple[IPAddress, ...] = (LOOPBACK,),
) -> ResolvedUrl:
    url = httpx.URL(f"{scheme}://{host}:{port}/cb?k=v")
    return ResolvedUrl(url=url, host=host, port=port, addresses=addresses)


def poster(tls: ssl.SSLContext | None = None) -> CallbackPoster:
    return CallbackPoster(connect_timeout=2.0, keepalive_seconds=30.0, max_idle_per_host=4, tls=tls)


async def post(
    sender: CallbackPoster, target: ResolvedUrl, *, limit: int = 1024, now: float = 0.0
) -> tuple[int, str, str, bytes]:
    answer = await sender.post(
        target, {"X-Test": "1"}, b'{"uuid":"a"}', max_answer_bytes=limit, now=now
    )
    return answer.status_code, answer.reason, answer.location, answer.body


async def test_a_kept_connection_carries_the_next_posts(server: Server) -> None:
    sender = poster()
    try:
        for _ in range(3):
            assert await post(sender, resolved(server.port)) == (200, "OK", "", b"1")
    finally:
        sender.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.head.startswith(b"POST /cb?k=v HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n".encode() in first.head.lower()
    assert b"x-test: 1\r\n" in first.head.lower()
    assert first.body == b'{"uuid":"a"}'


async def test_an_idle_connection_is_not_kept_past_the_keepalive(server: Server) -> None:
    sender = poster()
    try:
        await post(sender, resolved(server.port), now=0.0)
        await post(sender, resolved(server.port), now=29.0)
        await post(sender, resolved(server.port), now=60.0)
    finally:
        sender.close()
    assert [r.connection for r in server.requests] == [1, 1, 2]


async def test_an_answer_is_read_up_to_the_limit_and_its_connection_dropped(
    server: Server,
) -> None:
    async def endless(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5000000\r\n\r\n")
        writer.write(b"E" * 200_000)

    server.script = endless
    sender = poster()
    try:
        status, reason, _location, body = await post(sender, resolved(server.port), limit=1024)
        server.script = answer_ok
        assert await post(sender, resolved(server.port)) == (200, "OK", "", b"1")
    finally:
        sender.close()
    assert (status, reason, body) == (500, "Internal Server Error", b"E" * 1024)
    assert [r.connection for r in server.requests] == [1, 2]


async def test_informational_and_chunked_answers(server: Server) -> None:
    async def redirect(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.example/x\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")

    server.script = redirect
    sender = poster()
    try:
        answer = await post(sender, resolved(server.port))
        assert answer == (302, "Found", "http://elsewhere.example/x", b"abcde")
        await post(sender, resolved(server.port))
    finally:
        sender.close()
    assert [r.connection for r in server.requests] == [1, 1]


async def test_bytes_after_an_answer_are_not_taken_for_the_next_one(server: Server) -> None:
    async def stray(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(OK)
        if request.connection == 1:
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")

    server.script = stray
    sender = poster()
    try:
        assert (await post(sender, resolved(server.port)))[0] == 200
        assert (await post(sender, resolved(server.port)))[0] == 200
    finally:
        sender.close()
    assert [r.connection for r in server.requests] == [1, 2]


async def test_connection_close_is_honoured(server: Server) -> None:
    async def closing(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        writer.close()

    server.script = closing
    sender = poster()
    try:
        assert await post(sender, resolved(server.port)) == (204, "No Content", "", b"")
        assert await post(sender, resolved(server.port)) == (204, "No Content", "", b"")
    finally:
        sender.close()
    assert [r.connection for r in server.requests] == [1, 2]


async def test_a_kept_connection_closed_as_the_request_goes_out_is_retried_once(
    server: Server,
) -> None:
    async def drop_second(request: Request, writer: asyncio.StreamWriter) -> None:
        if len(server.requests) == 2:
            writer.close()  # read the request, never answered it
        else:
            writer.write(OK)

    server.script = drop_second
    sender = poster()
    try:
        await post(sender, resolved(server.port))
        assert await post(sender, resolved(server.port)) == (200, "OK", "", b"1")
    finally:
        sender.close()
    assert [r.connection for r in server.requests] == [1, 1, 2]


async def test_a_new_connection_closed_without_an_answer_fails(server: Server) -> None:
    async def hang_up(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server.script = hang_up
    sender = poster()
    try:
        with pytest.raises(ProtocolError, match="closed the connection without answering"):
            await post(sender, resolved(server.port))
    finally:
        sender.close()
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SMTP ready\r\n\r\n", "not valid HTTP/1.1"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "mid-answer"),
    ],
)
async def test_broken_answers_fail(server: Server, answer: bytes, message: str) -> None:
    async def broken(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()
        writer.close()

    server.script = broken
    sender = poster()
    try:
        with pytest.raises(ProtocolError, match=message):
            await post(sender, resolved(server.port))
    finally:
        sender.close()


async def test_the_next_checked_address_is_tried_when_one_refuses(server: Server) -> None:
    refusing = ipaddress.ip_address("127.0.0.2")  # on loopback, nothing listens there
    sender = poster()
    try:
        both = resolved(server.port, addresses=(refusing, LOOPBACK))
        assert (await post(sender, both))[0] == 200
        with pytest.raises(ConnectError, match=f"127.0.0.2 port {server.port}"):
            await post(sender, resolved(server.port, addresses=(refusing,)))
    finally:
        sender.close()


def certificate(folder: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for `name`: (the server's context, a client's that
    trusts it and nothing else)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert_file, key_file)
    client_side = ssl.create_default_context(cafile=str(cert_file))
    return server_side, client_side


async def test_https_to_a_checked_address_verifies_the_host_name(tmp_path: Path) -> None:
    server_side, client_side = certificate(tmp_path, "callbacks.example")
    async with serving(Server(), server_side) as server:
        sender = poster(client_side)
        try:
            target = resolved(server.port, host="callbacks.example", scheme="https")
            assert await post(sender, target) == (200, "OK", "", b"1")
            assert await post(sender, target) == (200, "OK", "", b"1")
            # The certificate names callbacks.example: a URL naming another host fails.
            other = resolved(server.port, host="other.example", scheme="https")
            with pytest.raises(ConnectError, match="certificate"):
                await post(sender, other)
        finally:
            sender.close()
        assert [r.connection for r in server.requests] == [1, 1]
        assert (
            f"host: callbacks.example:{server.port}\r\n".encode() in server.requests[0].head.lower()
        )
