"""The operator's view of the fleet: nodes (alive or not, their calls and trunk shares)
and trunks (configured limits beside the channels in use and the rate, summed over the
live nodes' last reports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ivrcast.config import Settings
from ivrcast.store.engine import Database
from ivrcast.store.fleet import NodeStatus, node_statuses
from ivrcast.store.health import DEAD_AFTER_BEATS

STOPPED_SHOWN = timedelta(hours=1)  # stopped nodes stay on the page this long


@dataclass(frozen=True)
class NodeView:
    node: NodeStatus
    state: str  # "live", "late" (no heartbeat for 3 beats: about to be declared dead), "stopped"
    heartbeat_age: float
    trunks: dict[str, dict[str, Any]]


@dataclass
class TrunkView:
    name: str
    countries: str
    max_channels: int
    max_cps: float
    active: int = 0
    cps: float = 0.0
    nodes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FleetView:
    nodes: list[NodeView]
    trunks: list[TrunkView]
    live_nodes: int


def fleet_view(db: Database, settings: Settings, *, now: datetime) -> FleetView:
    """Read the nodes and sum the live ones' reports per trunk. Blocking."""
    with db.read() as conn:
        statuses = node_statuses(conn, stopped_since=now - STOPPED_SHOWN)
    late_after = DEAD_AFTER_BEATS * settings.dialer.heartbeat_seconds
    trunks = {
        t.name: TrunkView(t.name, ", ".join(t.countries), t.max_channels, t.max_cps)
        for t in settings.trunks
    }
    views = []
    for status in statuses:
        age = max(0.0, (now - status.heartbeat_at).total_seconds())
        state = "stopped" if status.stopped_at else "late" if age > late_after else "live"
        reported = status.report.get("trunks", {})
        views.append(NodeView(status, state, age, reported if isinstance(reported, dict) else {}))
        if state != "live":
            continue
        for name, figures in views[-1].trunks.items():
            trunk = trunks.get(name)
            if trunk is None or not isinstance(figures, dict):
                continue
            trunk.active += int(figures.get("active", 0))
            trunk.cps += float(figures.get("cps", 0.0))
            trunk.nodes.append(status.id)
    return FleetView(views, list(trunks.values()), sum(v.state == "live" for v in views))
