"""Waiting for a condition in a test: poll it until it holds, with a deadline, never a
fixed sleep. One helper for each kind of caller:

- `wait_for`: an async test polling a cheap condition on the event loop (a socket bound,
  a list filled, a file appearing);
- `wait_for_in_thread`: an async test polling a blocking condition (a database query)
  off the loop, so the dialer or sender under test keeps running;
- `wait_for_sync`: a synchronous test (processes started with `subprocess`).

Each raises `TimeoutError` naming `what` when the deadline passes: a test failure, and
catchable by a fixture that wants to add the peer's logs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEFAULT_LIMIT = 10.0


def _timed_out(what: str, limit: float) -> TimeoutError:
    return TimeoutError(f"timed out after {limit} s waiting for {what}")


async def wait_for(
    condition: Callable[[], bool], what: str, *, limit: float = DEFAULT_LIMIT
) -> None:
    """Poll `condition` on the running loop until it holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not condition():
        if loop.time() > end:
            raise _timed_out(what, limit)
        await asyncio.sleep(0.01)


async def wait_for_in_thread(
    condition: Callable[[], bool], what: str, *, limit: float = DEFAULT_LIMIT
) -> None:
    """Poll the blocking `condition` in a worker thread until it holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not await asyncio.to_thread(condition):
        if loop.time() > end:
            raise _timed_out(what, limit)
        await asyncio.sleep(0.05)


def wait_for_sync(
    condition: Callable[[], bool], what: str, *, limit: float = DEFAULT_LIMIT
) -> None:
    """Poll `condition` in this thread until it holds."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            raise _timed_out(what, limit)
        time.sleep(0.05)
