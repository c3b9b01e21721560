"""Waking callback senders in other processes on SQLite, which has no NOTIFY.

`ivrcast serve` on SQLite writes records in its dialer process and sends them from the
server process, so the in-process wakeup (`outbox_wakeup.subscribe`) never hears of
them. Every process on one SQLite database runs on the host that holds the file, so a
sender that wants to hear of commits made elsewhere binds a Unix datagram socket in a
directory beside the database (`<database>-wake/`, private to its owner: only the
user who can write the database can ring), and `outbox_wakeup.announce` sends one empty
datagram to every socket there but its own process's. Sends never block (a socket whose
queue is full has wakeups waiting already); a socket nobody reads any more (its process
died) refuses the datagram and is removed.

Like NOTIFY, a lost datagram only costs latency: the sender's poll finds the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from ivrcast.private_files import private_dir

logger = logging.getLogger(__name__)

SUFFIX = "-wake"
MAX_SOCKET_PATH = 107
"""Bytes a Unix socket path may have (`sun_path`, less its terminating NUL)."""
_READ_AT_ONCE = 256
"""Datagrams drained per readiness callback (each is a wakeup; one is enough)."""


def doorbell_dir(url: str) -> Path | None:
    """The sockets' directory for the database at `url` (`Database.url`); None unless it
    is an SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    database = Path(parsed.database or "").absolute()
    return database.with_name(database.name + SUFFIX)


def ring_doorbells(directory: Path) -> None:
    """One datagram to every other process's doorbell in `directory`, without waiting."""
    own = f"{os.getpid()}-"
    try:
        entries = os.scandir(directory)
    except OSError:
        return  # No sender has ever listened here.
    with entries, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as bell:
        bell.setblocking(False)
        for entry in entries:
            if entry.name.startswith(own) or not entry.name.endswith(".sock"):
                continue
            try:
                bell.sendto(b"", entry.path)
            except BlockingIOError:
                pass  # Its queue is full: it has wakeups to read already.
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            except OSError as exc:
                logger.debug("doorbell %s not rung: %s", entry.path, exc)


class Doorbell:
    """This process's doorbell: rings `ring` on the loop when another process rang it."""

    def __init__(self, directory: Path, ring: Callable[[], None]) -> None:
        self.path = directory / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        self._ring = ring
        self._socket: socket.socket | None = None

    def open(self) -> bool:
        """Bind and start reading on the running loop; False (and the poll only) when
        the directory cannot hold the socket, or its path is too long for one."""
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            logger.info(
                "no doorbell for the callback sender: %s is too long a socket path",
                self.path,
                extra={"event": "outbox_doorbell_unavailable"},
            )
            return False
        bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            private_dir(self.path.parent)
            bell.bind(os.fspath(self.path))
            bell.setblocking(False)
        except OSError as exc:
            bell.close()
            logger.info(
                "no doorbell for the callback sender: %s",
                exc,
                extra={"event": "outbox_doorbell_unavailable"},
            )
            return False
        self._socket = bell
        asyncio.get_running_loop().add_reader(bell.fileno(), self._on_readable)
        return True

    def close(self) -> None:
        if self._socket is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().remove_reader(self._socket.fileno())
        self._socket.close()
        self._socket = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _on_readable(self) -> None:
        if self._socket is None:
            return
        for _ in range(_READ_AT_ONCE):
            try:
                self._socket.recv(1)
            except (BlockingIOError, InterruptedError):
                break
        self._ring()
