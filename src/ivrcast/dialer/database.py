"""The one thread of the dialer process that talks to the database."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ivrcast.store.engine import Database

T = TypeVar("T")


class DatabaseThread:
    """Runs every statement of the dialer on one worker thread, so statements never
    block the event loop (and the media clock on it) and SQLite sees a single writer
    from this process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ivrcast-db")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
