"""One callback POST over HTTP/1.1, on connections kept alive between attempts.

The sender needs little of a general HTTP client: one method, a small body, no redirects,
no cookies, a status and at most `max_answer_bytes` of the answer, to an address the SSRF
guard has already checked (`netguard.ResolvedUrl`). In the drain's profile httpx cost
about 0.5 ms of CPU per POST, most of it in layers the sender does not use (request and
URL objects, a connection pool that polls every idle socket on each request); h11 (the
HTTP/1.1 state machine httpx itself runs on) driven from an `asyncio.Protocol` costs
about a fifth of that. The sender already bounds the attempts per origin, so no pool
logic is needed here beyond keeping the idle connections.

Idle connections are kept per (scheme, host name, port): a TLS session opened for one host
name is never reused for another, and one is reused only while its address is among those
the guard checked for this attempt. A connection is kept only after a complete exchange
both sides may continue, and dropped when the peer sends anything or hangs up while it is
idle (a server's "408" before an idle close would otherwise be read as the next answer),
or once it has been idle `keepalive_seconds`.

A peer can still close a kept connection just as a request goes out. When a reused
connection ends without any answer, the request is sent once more on a new connection:
the receiver may then see it twice, which at-least-once delivery allows (it dedupes on
`uuid`).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import h11
import httpx

from ivrcast.errors import CallbackError
from ivrcast.netguard import IPAddress, ResolvedUrl

READ_AHEAD_BYTES = 65536
"""Unread answer bytes buffered before the socket is no longer read from."""


class PostFailed(CallbackError):
    """The POST got no complete answer."""


class ConnectError(PostFailed):
    """No connection could be made to any checked address."""


class ProtocolError(PostFailed):
    """The connection broke, or the peer did not speak HTTP/1.1, before the answer ended."""


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    reason: str
    """The reason phrase as the receiver sent it."""
    location: str
    """The `Location` header ("" when absent): what a redirect names."""
    body: bytes
    """At most `max_answer_bytes` of the body; the rest is never read."""

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


class _Target(NamedTuple):
    scheme: str
    host: str
    port: int


class _Wire(asyncio.Protocol):
    """One connection: bytes in feed its h11 state machine, and wake whoever waits."""

    def __init__(self, address: IPAddress) -> None:
        self.address = address
        self.http = h11.Connection(h11.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.exchanging = False
        """True from sending a request to the end of its answer; bytes or a hang-up at
        any other time make the connection unusable."""
        self.broken = False
        self.lost: Exception | None = None
        """Why the connection was lost, when the transport said (a reset, a TLS error)."""
        self.idle_since = 0.0
        self.received = 0
        """Bytes received since the current request went out."""
        self._unread = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.exchanging:
            self.close()
            return
        self.http.receive_data(data)
        self.received += len(data)
        self._unread += len(data)
        if self._unread > READ_AHEAD_BYTES and not self._paused and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.broken = True
        self.http.receive_data(b"")
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        self.lost = exc
        self.http.receive_data(b"")
        self._wake()

    def close(self) -> None:
        self.broken = True
        if self.transport is not None:
            self.transport.close()

    async def readable(self) -> None:
        """Until more bytes (or the end) arrive."""
        self._unread = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        if self.broken:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _ClosedUnanswered(Exception):
    """A connection ended before any answer began (retried once when it was reused)."""


class CallbackPoster:
    """POSTs to checked addresses, keeping connections alive between attempts."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        keepalive_seconds: float,
        max_idle_per_host: int,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: what HTTPS servers are verified against; by default the trust store
        httpx uses (certifi's), as the sender did before this module."""
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive_seconds
        self._max_idle = max_idle_per_host
        self._idle: dict[_Target, list[_Wire]] = {}
        self._tls = tls

    async def post(
        self,
        resolved: ResolvedUrl,
        headers: Mapping[str, str],
        body: bytes,
        *,
        max_answer_bytes: int,
        now: float,
    ) -> Answer:
        """POST `body` to the first checked address that accepts a connection. `now` (a
        monotonic time) dates the connection's idleness afterwards. The caller bounds the
        whole attempt in time; cancelling it closes the connection."""
        target = _Target(resolved.url.scheme, resolved.host, resolved.port)
        request = h11.Request(
            method="POST",
            target=resolved.url.raw_path,
            headers=[
                ("Host", resolved.host_header),
                *headers.items(),
                ("Content-Length", str(len(body))),
            ],
        )
        wire = self._reusable(target, resolved, now)
        if wire is not None:
            try:
                return await self._exchange(target, wire, request, body, max_answer_bytes, now)
            except _ClosedUnanswered:
                pass  # closed by the peer as the request went out: once more, afresh
        wire = await self._connect(resolved)
        try:
            return await self._exchange(target, wire, request, body, max_answer_bytes, now)
        except _ClosedUnanswered as exc:
            why = f": {wire.lost}" if wire.lost else ""
            raise ProtocolError(f"the server closed the connection without answering{why}") from exc

    def close_idle(self, now: float) -> None:
        """Close the connections idle for `keepalive_seconds` or more."""
        for target, wires in list(self._idle.items()):
            kept: list[_Wire] = []
            for wire in wires:
                if wire.broken or now - wire.idle_since >= self._keepalive:
                    wire.close()
                else:
                    kept.append(wire)
            if kept:
                self._idle[target] = kept
            else:
                del self._idle[target]

    def close(self) -> None:
        """Close every idle connection (one in use closes when its attempt ends)."""
        idle, self._idle = self._idle, {}
        for wires in idle.values():
            for wire in wires:
                wire.close()

    def _reusable(self, target: _Target, resolved: ResolvedUrl, now: float) -> _Wire | None:
        wires = self._idle.get(target)
        while wires:
            wire = wires.pop()
            if (
                not wire.broken
                and now - wire.idle_since < self._keepalive
                and wire.address in resolved.addresses
            ):
                return wire
            wire.close()
        return None

    async def _connect(self, resolved: ResolvedUrl) -> _Wire:
        loop = asyncio.get_running_loop()
        tls = None
        server_name = None
        if resolved.url.scheme == "https":
            tls = self._tls_context()
            # An IP literal is verified as itself: its certificate must name that address.
            server_name = resolved.tls_server_name or resolved.host
        for address in resolved.addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    _transport, wire = await loop.create_connection(
                        functools.partial(_Wire, address),
                        host=str(address),
                        port=resolved.port,
                        ssl=tls,
                        server_hostname=server_name,
                    )
            except (OSError, TimeoutError) as exc:
                if address != resolved.addresses[-1]:
                    continue
                reason = (
                    f"no connection within {self._connect_timeout:g} s"
                    if isinstance(exc, TimeoutError)
                    else str(exc) or type(exc).__name__
                )
                raise ConnectError(f"{address} port {resolved.port}: {reason}") from exc
            return wire
        raise ConnectError("the host has no address")  # resolve_public never returns none

    async def _exchange(
        self,
        target: _Target,
        wire: _Wire,
        request: h11.Request,
        body: bytes,
        max_answer_bytes: int,
        now: float,
    ) -> Answer:
        http = wire.http
        wire.exchanging = True
        wire.received = 0
        reusable = False
        try:
            assert wire.transport is not None
            try:
                message = http.send(request) + http.send(h11.Data(data=body))
                message += http.send(h11.EndOfMessage())
            except h11.LocalProtocolError as exc:
                raise ProtocolError(f"the request cannot be sent: {exc}") from exc
            wire.transport.write(message)
            response: h11.Response | None = None
            answer = bytearray()
            while True:
                try:
                    event = http.next_event()
                except h11.RemoteProtocolError as exc:
                    if wire.broken and not wire.received:
                        raise _ClosedUnanswered from exc
                    if wire.broken and response is not None:
                        raise ProtocolError(
                            f"the server closed the connection mid-answer ({exc})"
                        ) from exc
                    raise ProtocolError(f"the answer is not valid HTTP/1.1: {exc}") from exc
                if event is h11.NEED_DATA:
                    await wire.readable()
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    answer += event.data
                    if len(answer) >= max_answer_bytes:
                        break  # the rest is never read; the connection goes with it
                elif isinstance(event, h11.EndOfMessage):
                    # Bytes after the answer would be read as the next one's.
                    reusable = (
                        http.our_state is h11.DONE
                        and http.their_state is h11.DONE
                        and not http.trailing_data[0]
                    )
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    if not wire.received:
                        raise _ClosedUnanswered
                    why = f": {wire.lost}" if wire.lost else ""
                    raise ProtocolError(f"the server closed the connection mid-answer{why}")
                # An informational (1xx) answer precedes the real one: nothing to do.
            assert response is not None  # h11 ends no message before its head
            return Answer(
                status_code=response.status_code,
                reason=response.reason.decode("ascii", "replace"),
                location=_header(response, b"location"),
                body=bytes(answer[:max_answer_bytes]),
            )
        finally:
            wire.exchanging = False
            if reusable and not wire.broken:
                self._keep(target, wire, now)
            else:
                wire.close()

    def _keep(self, target: _Target, wire: _Wire, now: float) -> None:
        wire.http.start_next_cycle()
        wire.idle_since = now
        wires = self._idle.setdefault(target, [])
        if len(wires) < self._max_idle:
            wires.append(wire)
        else:
            wire.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = httpx.create_ssl_context(trust_env=False)
            self._tls.set_alpn_protocols(["http/1.1"])
        return self._tls


def _header(response: h11.Response, name: bytes) -> str:
    for key, value in response.headers:
        if key == name:
            return value.decode("latin-1")
    return ""
