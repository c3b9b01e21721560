"""The one UDP socket all calls share for SIP (RFC 3261 §18), on asyncio.

It parses each datagram, stamps responses with their receive time, and hands the
message to the engine. Malformed datagrams are logged and dropped here, so nothing
above ever sees bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from ivrcast.sip.errors import SipParseError, SipTransportError
from ivrcast.sip.message import Request, Response, parse_message

logger = logging.getLogger(__name__)

Address = tuple[str, int]
MessageHandler = Callable[[Request | Response, Address], None]


class SipTransport(asyncio.DatagramProtocol):
    def __init__(self, on_message: MessageHandler) -> None:
        self._on_message = on_message
        self._transport: asyncio.DatagramTransport | None = None
        self.dropped = 0  # malformed datagrams
        self.local_address: Address = ("", 0)

    @classmethod
    async def open(cls, host: str, port: int, on_message: MessageHandler) -> SipTransport:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: cls(on_message), local_addr=(host, port)
            )
        except OSError as exc:
            raise SipTransportError(f"cannot open SIP socket on {host}:{port}: {exc}") from exc
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.local_address = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        received_at = asyncio.get_running_loop().time()
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

    def error_received(self, exc: Exception) -> None:
        logger.warning("SIP socket error: %s", exc, extra={"event": "sip.socket_error"})

    def send(self, message: Request | Response, address: Address) -> None:
        if self._transport is None or self._transport.is_closing():
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
        self._transport.sendto(data, address)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
