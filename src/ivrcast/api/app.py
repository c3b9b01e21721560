"""The API's ASGI application: the compat interface, REST `/v1`, metrics.

`ivrcast.app` composes it with the console and the background tasks of the process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from ivrcast import __version__
from ivrcast.api import health, metrics, recordings, v1, yunhu
from ivrcast.api.context import ApiContext
from ivrcast.api.errors import TooManyFailedSignIns
from ivrcast.api.request_limits import RequestLimits
from ivrcast.api.throttle import throttled_response
from ivrcast.errors import IvrcastError

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


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


def build_api(ctx: ApiContext, *, lifespan: Lifespan) -> FastAPI:
    """The API's app on `ctx`: the compat interface, REST `/v1` and metrics, with their
    error answers and request limits. `ivrcast.app.create_app` installs the console on
    it and gives the `lifespan` that runs the background work."""
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
    app.include_router(recordings.router)
    app.include_router(metrics.router)
    app.include_router(health.router)
    app.add_exception_handler(IvrcastError, v1.error_response)
    app.add_exception_handler(TooManyFailedSignIns, throttled_response)
    app.add_exception_handler(RequestValidationError, v1.validation_error_response)
    app.add_exception_handler(HTTPException, v1.http_error_response)
    # Added before the console's, so the console's headers wrap its refusals too.
    app.add_middleware(RequestLimits, settings=ctx.settings, clock=ctx.clock)
    return app
