"""The ASGI application: the compat interface, REST `/v1`, the console, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from ivrcast import __version__
from ivrcast.api import health, metrics, v1, yunhu
from ivrcast.api.context import ApiContext
from ivrcast.api.errors import TooManyFailedSignIns
from ivrcast.api.request_limits import RequestLimits
from ivrcast.api.throttle import throttled_response
from ivrcast.callbacks.sender import CallbackSender
from ivrcast.clock import Clock, SystemClock
from ivrcast.config import Settings
from ivrcast.console import install
from ivrcast.credentials import load_secret_key
from ivrcast.errors import IvrcastError, StoreError
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


class IvrcastApi(FastAPI):
    """FastAPI, with an OpenAPI schema that lists only answers the app gives."""

    def openapi(self) -> dict[str, Any]:
        """FastAPI adds a 422 of its own to every operation with parameters; here
        invalid parameters answer 400 (`v1.validation_error_response`), declared with
        the other errors, so its 422 goes unless the operation declared one itself."""
        if self.openapi_schema is None:
            schema = super().openapi()
            for operation in _operations(schema):
                answer = operation["responses"].get("422", {})
                if "HTTPValidationError" in json.dumps(answer):
                    del operation["responses"]["422"]
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            self.openapi_schema = schema
        return self.openapi_schema


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for path in schema.get("paths", {}).values() for op in path.values()]


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    deliver_callbacks: bool = True,
    transcoder: TranscodePool | None = None,
) -> FastAPI:
    """The app for `settings`. The schema must be migrated already (`ivrcast migrate`,
    or `ivrcast serve`, which migrates before it listens).

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

    app = IvrcastApi(
        title="ivrcast",
        version=__version__,
        summary="Batch IVR: dial numbers over SIP trunks, play a voice, report every call.",
        docs_url="/docs",
        openapi_url="/v1/openapi.json",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.include_router(yunhu.router)
    app.include_router(v1.router)
    app.include_router(metrics.router)
    app.include_router(health.router)
    app.add_exception_handler(IvrcastError, v1.error_response)
    app.add_exception_handler(TooManyFailedSignIns, throttled_response)
    app.add_exception_handler(RequestValidationError, v1.validation_error_response)
    app.add_exception_handler(HTTPException, v1.http_error_response)
    # Added before the console's, so the console's headers wrap its refusals too.
    app.add_middleware(RequestLimits, settings=settings, clock=ctx.clock)
    install(app)
    return app
