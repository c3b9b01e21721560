"""The operator's view of the fleet: nodes (alive or not, their calls and trunk shares)
and trunks (configured limits beside the channels in use and the rate, summed over the
live nodes' last reports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ivrcast.config import Settings
from ivrcast.store.engine import Database
from ivrcast.store.fleet import NodeStatus, node_statuses

STOPPED_SHOWN = timedelta(hours=1)  # stopped nodes stay on the page this long


@dataclass(frozen=True)
class NodeView:
    node: NodeStatus
    state: str  # NodeStatus.state: live, late or stopped
    heartbeat_age: float
    trunks: dict[str, dict[str, float]]


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
    trunks = {
        t.name: TrunkView(t.name, ", ".join(t.countries), t.max_channels, t.max_cps)
        for t in settings.trunks
    }
    views = []
    for status in statuses:
        state = status.state(now, settings.dialer.heartbeat_seconds)
        figures = status.trunk_figures()
        views.append(NodeView(status, state, status.heartbeat_age(now), figures))
        if state != "live":
            continue
        for name, reported in figures.items():
            trunk = trunks.get(name)
            if trunk is not None:
                trunk.active += int(reported.get("active", 0))
                trunk.cps += reported.get("cps", 0.0)
                trunk.nodes.append(status.id)
    return FleetView(views, list(trunks.values()), sum(v.state == "live" for v in views))
