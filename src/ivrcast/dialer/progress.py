"""Call progress and ends, committed in batches by one writer.

Each call job of the loop queues what happened to its call (`Invite`, `Progress`,
`Finished`); `ProgressWriter` commits them on the database thread, many per
transaction, so thousands of calls cost a few transactions a second rather than one
each.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ivrcast.clock import Clock
from ivrcast.dialer.database import DatabaseThread
from ivrcast.store import transitions
from ivrcast.store.records import RecordBuilder
from ivrcast.store.transitions import CallEnd, Invite

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05  # longest a progress update waits to be batched with others
RETRY_DELAY = 1.0  # after a database error in the writer


@dataclass(frozen=True)
class Progress:
    call_id: int
    kind: Literal["ringing", "answered"]
    at: datetime


@dataclass(frozen=True)
class Finished:
    call_id: int
    end: CallEnd


Update = Invite | Progress | Finished


class ProgressWriter:
    """Commits call progress and outcomes in order, many per transaction.

    An outcome still in this queue when the process dies is lost with it, and the call
    stays active in the database: recovery then ends it as `interrupted`, so it still
    gets exactly one final state and is never dialed again.
    """

    def __init__(self, dbt: DatabaseThread, build_record: RecordBuilder, clock: Clock) -> None:
        self._dbt = dbt
        self._build_record = build_record
        self._clock = clock
        self._pending: list[Update] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, update: Update) -> None:
        self._pending.append(update)
        self._idle.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Wait until everything added so far is committed."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_INTERVAL)
            self._wake.clear()
            batch, self._pending = self._pending, []
            try:
                await self._dbt.run(self._apply, batch)
            except Exception:
                logger.exception(
                    "could not write %d call updates; retrying",
                    len(batch),
                    extra={"event": "dialer.write_failed"},
                )
                self._pending[:0] = batch
                self._wake.set()
                await asyncio.sleep(RETRY_DELAY)
                continue
            if not self._pending:
                self._idle.set()

    def _apply(self, batch: list[Update]) -> None:
        # Grouped by kind in this order, a call's updates keep their own order: its
        # INVITE(s), 18x and 2xx always come before its end.
        invites = [u for u in batch if isinstance(u, Invite)]
        progress = [u for u in batch if isinstance(u, Progress)]
        ends = {u.call_id: u.end for u in batch if isinstance(u, Finished)}
        now = self._clock.now()
        with self._dbt.db.write() as conn:
            transitions.mark_invited(conn, invites)
            transitions.mark_ringing(
                conn, [(p.call_id, p.at) for p in progress if p.kind == "ringing"]
            )
            transitions.mark_answered(
                conn, [(p.call_id, p.at) for p in progress if p.kind == "answered"]
            )
            if ends:
                transitions.finish_calls(conn, ends, build_record=self._build_record, now=now)
                transitions.finish_ended_tasks(conn, now=now)
