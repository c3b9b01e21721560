"""`GET /metrics`: Prometheus text format, for the whole platform.

Two sources, merged at scrape time:
- gauges derived from the database when scraped (calls by state and nation, queue depth
  per nation and account, calls in progress per trunk across every dialer node), so
  they are right whichever process or host did the work;
- the dialer processes' own counters and histograms (INVITEs per trunk, whose rate is
  calls per second; calls in progress per trunk on each node; claim latency; failovers),
  which each dialer writes to `<data_dir>/metrics/` (`ivrcast.metric_snapshots`).

The labels name every tenant (appids) and trunk, so the page is the operator's: it asks
for `Authorization: Bearer <[security] operator_token>`, which Prometheus sends with
`authorization: {credentials: ...}` in its scrape config. Wrong tokens count towards the
operator token's sign-in throttle. With no operator token configured it is served to
loopback clients only (a Prometheus on the same host keeps working out of the box, and a
server listening on a public address does not hand its tenant list to the network);
behind a reverse proxy on the same host, configure the token.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ivrcast.api.context import ApiContext
from ivrcast.api.errors import BadOperatorToken, IpNotAllowed
from ivrcast.api.node_metrics import NodeCollector
from ivrcast.config import Settings
from ivrcast.metric_snapshots import read_snapshots
from ivrcast.store import stats
from ivrcast.store.engine import Database
from ivrcast.store.fleet import node_statuses

router = APIRouter()


class _ScrapeCollector(Collector):
    def __init__(
        self,
        by_state: list[tuple[str, str, int]],
        depth: list[tuple[str, str, int]],
        by_trunk: list[tuple[str, int]],
        data_dir: Path,
    ) -> None:
        self._by_state = by_state
        self._depth = depth
        self._by_trunk = by_trunk
        self._data_dir = data_dir

    def collect(self) -> Iterable[Metric]:
        calls = GaugeMetricFamily(
            "ivrcast_calls", "Calls by state and nation.", labels=["nationcode", "status"]
        )
        for nation, status, count in self._by_state:
            calls.add_metric([nation, status], count)
        yield calls
        depth = GaugeMetricFamily(
            "ivrcast_queue_depth",
            "Calls queued for dialing, by nation and account.",
            labels=["nationcode", "appid"],
        )
        for nation, appid, count in self._depth:
            depth.add_metric([nation, appid], count)
        yield depth
        active = GaugeMetricFamily(
            "ivrcast_active_calls",
            "Calls dialing, ringing or answered on every dialer node, by trunk "
            '("" for calls claimed but not yet sent).',
            labels=["trunk"],
        )
        for trunk, count in self._by_trunk:
            active.add_metric([trunk], count)
        yield active
        yield from read_snapshots(self._data_dir)


def render(db: Database, settings: Settings, now: datetime) -> bytes:
    """The exposition text. Blocking (reads the database and the dialers' files)."""
    with db.read() as conn:
        by_state = stats.calls_by_state(conn)
        depth = stats.queue_depth(conn)
        by_trunk = stats.active_by_trunk(conn)
        statuses = node_statuses(conn, stopped_since=now)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ScrapeCollector(by_state, depth, by_trunk, settings.data_dir))
    registry.register(
        NodeCollector(statuses, now=now, heartbeat_seconds=settings.dialer.heartbeat_seconds)
    )
    return generate_latest(registry)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    ctx: ApiContext = request.app.state.ctx
    ip = request.client.host if request.client else None
    if ctx.settings.security.operator_token:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise BadOperatorToken("send Authorization: Bearer <operator_token>")
        await ctx.in_thread(lambda: ctx.check_operator_token(token.strip(), ip))
    elif not _is_loopback(ip):
        raise IpNotAllowed(
            "IP not authorized: /metrics is served to loopback only while "
            "[security] operator_token is not set"
        )
    body = await ctx.in_thread(lambda: render(ctx.db, ctx.settings, ctx.clock.now()))
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)


def _is_loopback(client_ip: str | None) -> bool:
    try:
        return client_ip is not None and ipaddress.ip_address(client_ip).is_loopback
    except ValueError:
        return False
