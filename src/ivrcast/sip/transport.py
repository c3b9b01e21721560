"""The one UDP socket all calls share for SIP (RFC 3261 §18), on asyncio.

It parses each datagram, stamps responses with their receive time, and hands the
message to the engine. Malformed datagrams are logged and dropped here, so nothing
above ever sees bytes.

The socket is read directly rather than through asyncio's datagram transport, which
reads one datagram per loop iteration: when thousands of calls' media keep each
iteration long, that rate falls below the signalling rate, the socket buffer overflows
and 200 OKs are lost until Timer B fails the calls. Here each readiness drains up to
`MAX_DATAGRAMS_PER_READ`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from ivrcast.sip.errors import SipParseError, SipTransportError
from ivrcast.sip.message import Request, Response, parse_message

logger = logging.getLogger(__name__)

Address = tuple[str, int]
MessageHandler = Callable[[Request | Response, Address], None]

MAX_DATAGRAMS_PER_READ = 64
MAX_DATAGRAM = 65535
RECEIVE_BUFFER = 4 << 20  # asked for; the kernel caps it at net.core.rmem_max


class SipTransport:
    def __init__(self, sock: socket.socket, on_message: MessageHandler) -> None:
        self._sock = sock
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self.dropped = 0  # malformed datagrams
        self.local_address: Address = sock.getsockname()[:2]
        self._loop.add_reader(sock.fileno(), self._on_readable)

    @classmethod
    async def open(cls, host: str, port: int, on_message: MessageHandler) -> SipTransport:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP
            )
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise SipTransportError(f"cannot open SIP socket on {host}:{port}: {exc}") from exc
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise SipTransportError(f"cannot open SIP socket on {host}:{port}: {exc}") from exc
        return cls(sock, on_message)

    def _on_readable(self) -> None:
        for _ in range(MAX_DATAGRAMS_PER_READ):
            try:
                data, addr = self._sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError as exc:
                # An ICMP error for an earlier send (port unreachable): the transaction
                # layer's timers deal with the missing answer.
                logger.warning("SIP socket error: %s", exc, extra={"event": "sip.socket_error"})
                continue
            self._datagram_received(data, addr)

    def _datagram_received(self, data: bytes, addr: Address) -> None:
        received_at = self._loop.time()
        if not data.strip():
            return  # RFC 5626 §3.5.1 CRLF keep-alive
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self.dropped += 1
            logger.warning(
                "dropped malformed SIP datagram from %s:%s: %s",
                addr[0],
                addr[1],
                exc,
                extra={"event": "sip.malformed", "peer": f"{addr[0]}:{addr[1]}"},
            )
            return
        if isinstance(message, Response):
            message = message.stamped(received_at)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "recv from %s:%s\n%s",
                addr[0],
                addr[1],
                data.decode("utf-8", "replace"),
                extra={"event": "sip.recv", "sip_call_id": message.call_id},
            )
        self._on_message(message, addr[:2])

    def send(self, message: Request | Response, address: Address) -> None:
        """Send one message; a full socket buffer loses it as the network could, and
        the transaction layer retransmits (RFC 3261 §17)."""
        if self._closed:
            raise SipTransportError("the SIP transport is closed")
        data = bytes(message)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "send to %s:%s\n%s",
                address[0],
                address[1],
                data.decode("utf-8", "replace"),
                extra={"event": "sip.send", "sip_call_id": message.call_id},
            )
        try:
            self._sock.sendto(data, address)
        except BlockingIOError:
            logger.warning(
                "SIP send buffer full, message to %s:%s dropped",
                address[0],
                address[1],
                extra={"event": "sip.send_dropped", "sip_call_id": message.call_id},
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
