"""Telling callback senders that deliveries became due, the moment they are committed.

A sender that waited for its next poll to see a record written while it was idle spent
half the latency budget before doing anything. So a transaction that makes outbox rows
due now (a record written, a replay) calls `outbox_due(conn)`, and the news travels two
ways, both only once the transaction has committed:

* in this process: `Database.write()` (and `LoopWriter`) take the mark (`take_due_mark`)
  and, once committed, `announce` it to every callback `subscribe`d for the database's
  URL. The callbacks run in the committing thread, whichever it is;
* to other processes, on PostgreSQL: `outbox_due` also sends `NOTIFY ivrcast_outbox` in
  the transaction. PostgreSQL delivers it at commit (never for a rolled-back one, and
  once however many times one transaction sent it) to every session listening on the
  channel; `OutboxListener` is such a session. The payload names the process that
  committed, and a listener passes over its own process's: the announcement has woken
  that sender already, and a second ring arriving mid-pass would make a pass more;
* to other processes, on SQLite: `announce` also rings the other processes' doorbells
  (`store.outbox_doorbell`).

None is needed for correctness: senders still poll, so a lost signal (a listener
reconnecting, a doorbell that could not be bound) only costs latency.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from ivrcast.store.outbox_doorbell import doorbell_dir, ring_doorbells

logger = logging.getLogger(__name__)

CHANNEL = "ivrcast_outbox"
RECONNECT_SECONDS = 1.0
"""Pause between two attempts to open the listening session."""
_DUE = "ivrcast_outbox_due"
"""Key in the connection's `info`: this transaction made outbox rows due."""

_INSTANCE = secrets.token_hex(8)
"""With the process id, names this process in notifications: process ids repeat across
hosts, and a forked child keeps its parent's memory."""

_subscribers: dict[str, list[Callable[[], None]]] = {}
_lock = threading.Lock()


def outbox_due(conn: Connection) -> None:
    """Mark the transaction of `conn` as one that made outbox rows due: whoever waits for
    them is told when it commits."""
    conn.info[_DUE] = True
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"NOTIFY {CHANNEL}, '{this_process()}'")


def this_process() -> str:
    """What this process's notifications carry (hex digits, a colon and digits)."""
    return f"{_INSTANCE}:{os.getpid()}"


@functools.lru_cache(maxsize=16)
def _doorbells_of(url: str) -> Path | None:
    return doorbell_dir(url)


def take_due_mark(conn: Connection) -> bool:
    """Whether the transaction of `conn` made outbox rows due, forgetting it: `info`
    lives as long as the pooled connection, so the mark must not outlive the
    transaction, committed or not. (A connection the database dropped is discarded
    with its `info`; touching it would try to reconnect.)"""
    if conn.invalidated:
        return False
    return bool(conn.info.pop(_DUE, False))


def announce(url: str) -> None:
    """Call the subscribers of `url` and, on SQLite, ring the other processes' doorbells:
    a transaction that made outbox rows due in that database has committed. A
    subscriber's error is logged; the commit stands."""
    directory = _doorbells_of(url)
    if directory is not None:
        ring_doorbells(directory)
    with _lock:
        callbacks = list(_subscribers.get(url, ()))
    for callback in callbacks:
        try:
            callback()
        except Exception:
            logger.exception("an outbox subscriber failed", extra={"event": "outbox_wakeup_failed"})


def subscribe(url: str, callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` after each commit in this process that made outbox rows due in
    the database at `url` (as `Database.url` spells it). Returns the unsubscribe."""
    with _lock:
        _subscribers.setdefault(url, []).append(callback)

    def unsubscribe() -> None:
        with _lock:
            callbacks = _subscribers.get(url, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                _subscribers.pop(url, None)

    return unsubscribe


class OutboxListener:
    """A PostgreSQL session of its own that `LISTEN`s for `outbox_due`'s notifications
    from every process, and rings on each.

    When the session cannot be opened or drops, `run` rings too (what was committed
    meanwhile was announced to nobody), logs once per outage, and tries again every
    `RECONNECT_SECONDS`; the sender's poll covers the gap.
    """

    def __init__(self, url: str, ring: Callable[[], None]) -> None:
        """`url`: the database's SQLAlchemy URL (`Database.url`), PostgreSQL only."""
        self._conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._ring = ring
        self.connected = asyncio.Event()
        """Set while the session listens (tests wait on it)."""
        self.backend_pid: int | None = None
        """The listening session's server process, while connected."""
        self.notices = 0
        """Notifications received so far."""
        self._down = False

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set."""
        while not stop.is_set():
            listening = asyncio.ensure_future(self._listen())
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait([listening, stopping], return_when=asyncio.FIRST_COMPLETED)
                if not listening.done():
                    listening.cancel()
                    await asyncio.gather(listening, return_exceptions=True)
                    return
                listening.result()
            except (psycopg.Error, OSError) as exc:
                if not self._down:
                    logger.warning(
                        "callback sender lost its notifications; polling until they are back: %s",
                        exc,
                        extra={"event": "outbox_listener_down"},
                    )
                self._down = True
            finally:
                stopping.cancel()
                self.connected.clear()
                self.backend_pid = None
            # Rows committed from now until the session is back are announced to nobody.
            self._ring()
            try:
                await asyncio.wait_for(stop.wait(), timeout=RECONNECT_SECONDS)
            except TimeoutError:
                continue

    async def _listen(self) -> None:
        """One session: LISTEN, then ring on every notification until it fails."""
        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            self.connected.set()
            # Rows committed while no session listened were announced to nobody.
            self._ring()
            if self._down:
                logger.info(
                    "callback sender's notifications are back",
                    extra={"event": "outbox_listener_back"},
                )
                self._down = False
            async for notice in conn.notifies():
                self.notices += 1
                if notice.payload != this_process():
                    self._ring()
