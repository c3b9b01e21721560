"""The overview page and the server-sent events that keep it (and a task page) live."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from ivrcast.api.context import ApiContext
from ivrcast.console.overview import CHART_MINUTES, OUTCOMES, OverviewHub
from ivrcast.console.web import Ctx, CurrentViewer, Viewer, render

router = APIRouter()

POLL_SECONDS = 3.0
STREAM_SECONDS = 20.0
"""A stream ends after this and the browser reconnects (EventSource does so by itself).
Short streams re-check the session often and never hold up a server's shutdown for
long: uvicorn waits for open responses before it exits."""
RETRY_MS = 1000


def hub(request: Request) -> OverviewHub:
    found: OverviewHub = request.app.state.console_hub
    return found


def overview_figures(request: Request, ctx: ApiContext, viewer: Viewer) -> dict[str, Any]:
    """Blocking: run in a thread."""
    return hub(request).snapshot(viewer.account_id, ctx.db.read, ctx.clock.now())


@router.get("/")
async def overview(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    figures = await ctx.in_thread(lambda: overview_figures(request, ctx, viewer))
    return render(
        request,
        viewer,
        "overview.html",
        {
            "figures": figures,
            "outcomes": list(OUTCOMES),
            "chart_minutes": CHART_MINUTES,
            "page": "overview",
        },
    )


@router.get("/events/overview")
async def overview_events(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    return event_stream(ctx, viewer, "overview", lambda: overview_figures(request, ctx, viewer))


def event_stream(
    ctx: ApiContext,
    viewer: Viewer,
    event: str,
    produce: Callable[[], dict[str, Any]],
    *,
    last: Callable[[dict[str, Any]], bool] = lambda data: False,
) -> StreamingResponse:
    """Poll `produce` (blocking, run in a thread) and send what changed as `event`.

    The stream ends early once `last(data)` holds (a finished task) or the session
    expires; the browser then reconnects, and is refused if the session is over.
    """

    async def lines() -> AsyncIterator[str]:
        started = time.monotonic()
        previous = None
        yield f"retry: {RETRY_MS}\n\n"
        while True:
            data = await ctx.in_thread(produce)
            text = json.dumps(data, separators=(",", ":"), default=str)
            # A comment line when nothing changed keeps proxies from timing the stream out.
            yield f"event: {event}\ndata: {text}\n\n" if text != previous else ": same\n\n"
            previous = text
            if (
                last(data)
                or time.monotonic() - started >= STREAM_SECONDS
                or viewer.session.expires_at <= ctx.clock.now()
            ):
                return
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        lines(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
