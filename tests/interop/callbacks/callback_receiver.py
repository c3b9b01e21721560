"""A real HTTP callback receiver on loopback, scripted per request, that can go away.

It runs `http.server` in a thread of its own, so the sender under test (in the test's
event loop) talks to it over real sockets. Every request is recorded when it arrives,
before it is answered, and its signature is checked as a customer's receiver would.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ivrcast.callbacks.signing import HEADER, InvalidSignature, verify


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"1"
    delay: float = 0.0
    """Seconds before answering (slow receivers); `hold` waits for `release` instead."""
    hold: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    path: str
    body: bytes
    headers: dict[str, str]
    signature_error: str | None
    """None when the signature verified (or there was none to check)."""

    @property
    def record(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def uuid(self) -> str:
        return str(self.record["uuid"])


Script = Callable[[int, str], Answer]
"""(request index from 0, path) -> how to answer."""


class Receiver:
    def __init__(
        self,
        script: Script = lambda _index, _path: Answer(),
        *,
        secret: str | None = "s3cret",
        now: Callable[[], float] = time.time,
    ) -> None:
        self.script = script
        self.secret = secret
        self.now = now
        self.received: list[Received] = []
        self.release = threading.Event()
        self.active = 0
        self.max_active = 0
        self.port = 0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/cb", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def start(self) -> None:
        """Listen (again on the same port, after `stop`)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the sender hung up on a held or slow answer: expected here

        self._httpd = Server(("127.0.0.1", self.port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="callback-receiver"
        )
        self._thread.start()

    def stop(self) -> None:
        """Go away: close the listening socket and every kept-alive connection, so that
        connections are refused until `start`."""
        assert self._httpd is not None
        assert self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._httpd = None

    def close(self) -> None:
        self.release.set()
        if self._httpd is not None:
            self.stop()

    def uuids(self) -> set[str]:
        with self._lock:
            return {r.uuid for r in self.received}

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        body = handler.rfile.read(length)
        with self._lock:
            index = len(self.received)
            self.received.append(
                Received(handler.path, body, dict(handler.headers), self._check(handler, body))
            )
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            answer = self.script(index, handler.path)
            if answer.hold:
                self.release.wait(30)
            elif answer.delay:
                self.release.wait(answer.delay)
            handler.send_response(answer.status)
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(answer.body)))
            handler.end_headers()
            handler.wfile.write(answer.body)
        finally:
            with self._lock:
                self.active -= 1

    def _check(self, handler: BaseHTTPRequestHandler, body: bytes) -> str | None:
        header = handler.headers.get(HEADER)
        if self.secret is None:
            return None if header is None else "signed, but the account has no secret"
        if header is None:
            return "no signature"
        try:
            verify(header, body, self.secret, now=self.now())
        except InvalidSignature as exc:
            return exc.message
        return None
