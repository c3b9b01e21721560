"""Read readiness for every call's RTP socket through one epoll set.

asyncio's `add_reader` costs, for each readable socket, a `Handle`, a trip through the
loop's ready queue and a `Context.run`. With one socket per call and a packet per call
every 20 ms, that dispatch cost more than reading and counting the packet. Here the loop
watches a single epoll descriptor; when it is readable one callback polls the set and
calls each ready socket's callback directly.

A callback reads one datagram. That keeps up while the loop comes back within a packet
interval; when an iteration runs long (thousands of calls ticking), a socket holds
several packets by the next poll, so each ready socket is then read as many times as
intervals went by, until it is empty: otherwise its kernel buffer would fill and drop
keys and audio while the loop had time to spare.
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Sockets served per loop callback; level-triggered, so the rest are served on the next.
MAX_EVENTS = 1024
MAX_READS = 16  # per ready socket and dispatch, however late the loop was

# Reads one datagram; False when none was waiting.
ReadOne = Callable[[], bool]


class SocketReaders:
    def __init__(self, *, interval: float, monotonic: Callable[[], float] | None = None) -> None:
        """`interval`: how often each socket is expected to receive a datagram;
        `monotonic`: the clock (the loop's by default)."""
        self._loop = asyncio.get_running_loop()
        self._interval = interval
        self._monotonic = monotonic or self._loop.time
        self._epoll = select.epoll()
        self._callbacks: dict[int, ReadOne] = {}
        self._last_dispatch = self._monotonic()
        self._loop.add_reader(self._epoll.fileno(), self._dispatch)

    def add(self, fd: int, callback: ReadOne) -> None:
        """Call `callback` whenever `fd` has data to read, until `remove(fd)`."""
        self._epoll.register(fd, select.EPOLLIN)
        self._callbacks[fd] = callback

    def remove(self, fd: int) -> None:
        """Stop watching `fd`; call before closing it."""
        if self._callbacks.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def __len__(self) -> int:
        return len(self._callbacks)

    def read_all(self) -> bool:
        """Read every ready socket until it is empty, now; False if none had data."""
        read = False
        for fd, _ in self._epoll.poll(0, MAX_EVENTS):
            callback = self._callbacks.get(fd)
            while callback is not None and callback():
                read = True
        return read

    def close(self) -> None:
        if self._epoll.closed:
            return
        self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._callbacks.clear()

    def _dispatch(self) -> None:
        now = self._monotonic()
        reads = min(1 + int((now - self._last_dispatch) / self._interval), MAX_READS)
        self._last_dispatch = now
        for fd, _ in self._epoll.poll(0, MAX_EVENTS):
            callback = self._callbacks.get(fd)
            if callback is None:
                continue
            try:
                for _ in range(reads):
                    if not callback():
                        break
            except Exception:
                # One broken reader must not stop the others' reads.
                logger.exception("socket reader failed", extra={"event": "rtp.reader_failed"})
