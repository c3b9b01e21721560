"""The ASGI application: the compat interface, REST `/v1`, the console, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from ivrcast import __version__
from ivrcast.api import v1, yunhu
from ivrcast.api.context import ApiContext
from ivrcast.clock import Clock, SystemClock
from ivrcast.config import Settings
from ivrcast.console import install
from ivrcast.credentials import load_secret_key
from ivrcast.errors import IvrcastError
from ivrcast.store.engine import Database


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """The app for `settings`. The schema must be migrated already (`ivrcast migrate`,
    or `ivrcast serve`, which migrates before it listens)."""
    db = Database(settings.database_url)
    ctx = ApiContext(
        settings=settings, db=db, clock=clock or SystemClock(), key=load_secret_key(settings)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        db.dispose()

    app = FastAPI(
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
    app.add_exception_handler(IvrcastError, v1.error_response)
    app.add_exception_handler(RequestValidationError, v1.validation_error_response)
    install(app)
    return app
