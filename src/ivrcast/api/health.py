"""`GET /healthz` and `GET /readyz`, for load balancers and orchestrators.

`/healthz` says the process answers (liveness: restart it if not). `/readyz` says it can
do its work (readiness: send it traffic): the database answers, its schema is the one
this code expects (an upgrade in progress, or a node started before `ivrcast migrate`,
answers 503), and, when trunks are configured, at least one dialer node has a fresh
heartbeat, so calls submitted here will be dialed. With no trunk the demo carrier is in
use and an API-only process is ready on its own. A 503 lists its reasons; neither page
needs credentials, and neither names hosts, nodes or error details.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ivrcast.api.context import ApiContext
from ivrcast.errors import StoreError
from ivrcast.store.health import DEAD_AFTER_BEATS, store_health

logger = logging.getLogger(__name__)

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    ctx: ApiContext = request.app.state.ctx
    reasons = await ctx.in_thread(lambda: readiness_problems(ctx))
    if reasons:
        return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
    return JSONResponse({"status": "ready", "reasons": []})


def readiness_problems(ctx: ApiContext) -> list[str]:
    """Why this process should get no traffic now; empty when it is ready. Blocking."""
    settings = ctx.settings
    # A node is alive while its heartbeat is younger than recovery's dead-node limit.
    stale_after = timedelta(seconds=DEAD_AFTER_BEATS * settings.dialer.heartbeat_seconds)
    try:
        health = store_health(ctx.db, nodes_since=ctx.clock.now() - stale_after)
    except StoreError as exc:
        logger.warning("readiness: %s", exc, extra={"event": "api.not_ready"})
        return ["database unreachable"]
    reasons = []
    if not health.schema_current:
        at = ",".join(sorted(health.schema_at)) or "none"
        head = ",".join(sorted(health.schema_head))
        reasons.append(f"database schema at revision {at}, this code needs {head}: migrate")
    if settings.trunks and health.fresh_nodes == 0:
        reasons.append(
            f"no dialer node has sent a heartbeat in the last {stale_after.total_seconds():g} s"
        )
    return reasons
