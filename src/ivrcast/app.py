"""The composition root of the server process: the API, the console and the background
work that runs beside them, put together.

`create_app` is the one place that knows every part of `ivrcast serve`'s process: the
API (`ivrcast.api`) and the console (`ivrcast.console`) never import each other's
setup, and neither starts the callback sender or the WAL checkpoints itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ivrcast.api.app import build_api
from ivrcast.api.context import ApiContext
from ivrcast.callbacks.sender import CallbackSender
from ivrcast.clock import Clock, SystemClock
from ivrcast.config import Settings
from ivrcast.console import install
from ivrcast.credentials import load_secret_key
from ivrcast.errors import StoreError
from ivrcast.store.engine import Database
from ivrcast.voices.pool import TranscodePool

logger = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 1.0


async def keep_delivering(
    settings: Settings, db: Database, clock: Clock, key: bytes, stop: asyncio.Event
) -> None:
    """Run the callback sender until `stop`; a crash of it is logged and it starts again,
    since its state is only rows in the outbox."""
    while not stop.is_set():
        try:
            await CallbackSender(settings, db, clock=clock, key=key).run(stop)
        except Exception:
            logger.exception("callback sender failed; restarting it")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


async def checkpoint_regularly(db: Database, stop: asyncio.Event) -> None:
    """SQLite only: keep the WAL short from a worker thread, so request commits never
    stop to copy it back (see `Database.checkpoint`)."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(db.checkpoint)
        except StoreError:
            logger.exception("WAL checkpoint failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=CHECKPOINT_SECONDS)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    deliver_callbacks: bool = True,
    transcoder: TranscodePool | None = None,
) -> FastAPI:
    """The app for `settings`: the API with the console installed. The schema must be
    migrated already (`ivrcast migrate`, or `ivrcast serve`, which migrates before it
    listens).

    While the app runs, its lifespan also runs the callback sender, which is I/O-bound
    and safe to run in several processes at once (deliveries are leased rows).
    """
    db = Database(settings.database_url, background_checkpoints=True)
    ctx = ApiContext(
        settings=settings,
        db=db,
        clock=clock or SystemClock(),
        key=load_secret_key(settings),
        transcoder=transcoder or TranscodePool(settings.limits.transcode_workers),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        sender: asyncio.Task[None] | None = None
        if deliver_callbacks:
            sender = asyncio.create_task(
                keep_delivering(settings, db, ctx.clock, ctx.key, stop), name="callback-sender"
            )
        checkpoints = (
            asyncio.create_task(checkpoint_regularly(db, stop), name="wal-checkpoints")
            if db.background_checkpoints
            else None
        )
        try:
            yield
        finally:
            stop.set()
            for task in (sender, checkpoints):
                if task is not None:
                    await task
            await asyncio.to_thread(ctx.transcoder.shutdown)
            db.dispose()

    app = build_api(ctx, lifespan=lifespan)
    install(app)
    return app
