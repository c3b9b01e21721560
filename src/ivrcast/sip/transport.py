"""The one UDP socket all calls share for SIP (RFC 3261 §18), on asyncio.

It parses each datagram, stamps responses with their receive time, and hands the
message to the engine. Malformed datagrams are dropped here, so nothing above ever sees
bytes, and counted; the line that says so is written at most once per sending host per
`MALFORMED_LOG_INTERVAL`, with the number held back since, so a host sending garbage
cannot flood the log.

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

from ivrcast.logthrottle import LogThrottle
from ivrcast.sip.errors import SipParseError, SipTransportError
from ivrcast.sip.message import Request, Response, parse_message

logger = logging.getLogger(__name__)

Address = tuple[str, int]
MessageHandler = Callable[[Request | Response, Address], None]

MAX_DATAGRAMS_PER_READ = 64
MAX_DATAGRAM = 65535
RECEIVE_BUFFER = 4 << 20  # asked for; the kernel caps it at net.core.rmem_max
MALFORMED_LOG_INTERVAL = 10.0  # seconds between two "malformed" lines about one host


class SipTransport:
    def __init__(
        self,
        sock: socket.socket,
        on_message: MessageHandler,
        *,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """`monotonic`: the clock the log throttle reads (the loop's by default)."""
        self._sock = sock
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self.dropped = 0  # malformed datagrams
        self._malformed_log = LogThrottle(MALFORMED_LOG_INTERVAL, monotonic or self._loop.time)
        self.local_address: Address = sock.getsockname()[:2]
        self._loop.add_reader(sock.fileno(), self._on_readable)

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        on_message: MessageHandler,
        *,
        monotonic: Callable[[], float] | None = None,
    ) -> SipTransport:
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
        return cls(sock, on_message, monotonic=monotonic)

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
            # Keyed by host, not port: a sender cannot multiply lines by changing ports.
            suppressed = self._malformed_log.admit(addr[0])
            if suppressed is not None:
                logger.warning(
                    "dropped malformed SIP datagram from %s:%s: %s (%d more from %s since"
                    " the last line)",
                    addr[0],
                    addr[1],
                    exc,
                    suppressed,
                    addr[0],
                    extra={
                        "event": "sip.malformed",
                        "peer": f"{addr[0]}:{addr[1]}",
                        "suppressed": suppressed,
                    },
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
        for host, count in self._malformed_log.drain():
            logger.warning(
                "dropped %d more malformed SIP datagrams from %s",
                count,
                host,
                extra={"event": "sip.malformed", "peer": str(host), "suppressed": count},
            )
