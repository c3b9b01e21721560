"""What wakes an idle callback sender before its poll: records committed for it.

`SenderWakeup.run` rings the sender (sets its wake event) after every commit that made
outbox rows due: in this process whatever thread committed (`store.outbox_wakeup`'s
subscription, handed to the loop with `call_soon_threadsafe`), and on PostgreSQL in
any process (the `LISTEN` session of `OutboxListener`), and on SQLite in the other
processes on this host (the datagram socket of `Doorbell`).

Wakeups coalesce: the sender's event stays set until its next pass begins, so any
number of commits while it sleeps or works make one more pass, and the commits of a
thread that writes in a tight loop cross to the loop at most once per loop iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ivrcast.store.engine import Database
from ivrcast.store.outbox_doorbell import Doorbell, doorbell_dir
from ivrcast.store.outbox_wakeup import OutboxListener, subscribe


class SenderWakeup:
    """Rings `ring` (on the loop that runs `run`) when deliveries may have become due."""

    def __init__(self, db: Database, ring: Callable[[], None]) -> None:
        self._db = db
        self._ring = ring
        self._handed_over = False
        """A ring is on its way to the loop; the ones behind it need not queue too."""
        self.listener = OutboxListener(db.url, ring) if db.dialect == "postgresql" else None
        """The cross-process session on PostgreSQL; None on SQLite."""
        self.doorbell: Doorbell | None = None
        """The cross-process socket on an SQLite file, while `run` runs."""

    async def run(self, stop: asyncio.Event) -> None:
        """Ring on every commit that made outbox rows due, until `stop` is set."""
        loop = asyncio.get_running_loop()

        def on_commit() -> None:
            if self._handed_over:
                return
            self._handed_over = True
            # The loop may be closing while a late commit lands: the sender is gone then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._ring_on_loop)

        unsubscribe = subscribe(self._db.url, on_commit)
        directory = doorbell_dir(self._db.url)
        self.doorbell = Doorbell(directory, self._ring) if directory is not None else None
        try:
            if self.doorbell is not None:
                self.doorbell.open()
            if self.listener is not None:
                await self.listener.run(stop)
            else:
                await stop.wait()
        finally:
            unsubscribe()
            if self.doorbell is not None:
                self.doorbell.close()

    def _ring_on_loop(self) -> None:
        # Cleared first: a commit from now on must hand over a ring of its own.
        self._handed_over = False
        self._ring()
