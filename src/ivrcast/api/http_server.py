"""The HTTP server the app runs in: uvicorn, with a deadline on request headers.

uvicorn closes idle keep-alive connections, but a connection that opens and sends
nothing, or sends headers a byte at a time, it keeps forever: enough of them exhaust the
process's file descriptors. `HeaderDeadlineProtocol` closes a connection whose request
headers are not complete within `server.header_timeout_seconds` of the connection's
opening or of the request's first byte, and one whose request was answered before its
body was read (uvicorn would keep discarding the body as long as it trickles in). Bodies
that are read are timed by `RequestLimits`, which sees when the app waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from ivrcast.config import Settings

logger = logging.getLogger(__name__)


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose headers come too slowly."""

    header_timeout: float = 10.0

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # Answered before the body was read (refused, or no route for it): the rest
            # would only be discarded, and a client could trickle it forever.
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _watch_headers(self) -> None:
        """Run the header timer while the peer is between the start of a request (or
        of the connection) and the end of its headers; stop it otherwise."""
        if self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(
                    self.header_timeout, self._headers_too_slow
                )
        else:
            self._stop_header_timer()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        logger.info(
            "request headers incomplete after %gs; closing the connection",
            self.header_timeout,
            extra={"event": "http.header_timeout", "client": self.client},
        )
        self._close()

    def _close(self) -> None:
        self._unset_keepalive_if_required()
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def server_config(app: ASGIApp, settings: Settings, *, log_level: str = "info") -> uvicorn.Config:
    """uvicorn's configuration for `app`, with the header deadline of `settings`."""
    protocol = type(
        "IvrcastHttpProtocol",
        (HeaderDeadlineProtocol,),
        {"header_timeout": settings.server.header_timeout_seconds},
    )
    # log_config=None: uvicorn's records go through the handler `ivrcast.logs` set up,
    # in the same format as ours, rather than through handlers of its own.
    return uvicorn.Config(
        app,
        http=protocol,
        log_level=log_level,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
