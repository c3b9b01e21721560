"""`/metrics` for the fleet's dialer nodes, from their rows: how many are live, each one's
heartbeat age, and what it reported with its last heartbeat (calls, per trunk its share
of the channels and rate, the channels in use and the rate reached). Any API process
serves them for every node, wherever the nodes run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ivrcast.store.fleet import NodeStatus

# (metric, help, key in a trunk's reported figures)
_TRUNK_GAUGES = (
    ("ivrcast_dialer_node_trunk_active_calls", "Channels in use on the trunk.", "active"),
    ("ivrcast_dialer_node_trunk_channels", "The node's share of the trunk's channels.", "channels"),
    ("ivrcast_dialer_node_trunk_cps", "INVITEs per second over the last heartbeat.", "cps"),
    ("ivrcast_dialer_node_trunk_max_cps", "The node's share of the trunk's rate.", "max_cps"),
)


class NodeCollector(Collector):
    def __init__(
        self, statuses: list[NodeStatus], *, now: datetime, heartbeat_seconds: float
    ) -> None:
        self._statuses = [s for s in statuses if s.stopped_at is None]
        self._now = now
        self._heartbeat_seconds = heartbeat_seconds

    def collect(self) -> Iterable[Metric]:
        states = {"live": 0, "late": 0}
        for status in self._statuses:
            states[status.state(self._now, self._heartbeat_seconds)] += 1
        count = GaugeMetricFamily(
            "ivrcast_nodes",
            "Dialer nodes running: live, or late (no heartbeat for 3 beats).",
            labels=["state"],
        )
        for state, n in states.items():
            count.add_metric([state], n)
        yield count
        age = GaugeMetricFamily(
            "ivrcast_dialer_node_heartbeat_age_seconds",
            "Seconds since the node's last heartbeat.",
            labels=["node", "hostname"],
        )
        calls = GaugeMetricFamily(
            "ivrcast_dialer_node_calls", "Calls the node has in progress.", labels=["node"]
        )
        finished = GaugeMetricFamily(
            "ivrcast_dialer_node_calls_finished",
            "Calls the node has ended since it started.",
            labels=["node"],
        )
        for status in self._statuses:
            age.add_metric([status.id, status.hostname], status.heartbeat_age(self._now))
            for family, key in ((calls, "calls"), (finished, "finished")):
                value = status.report.get(key)
                if isinstance(value, int | float):
                    family.add_metric([status.id], value)
        yield from (age, calls, finished)
        for name, text, key in _TRUNK_GAUGES:
            family = GaugeMetricFamily(name, text, labels=["node", "trunk"])
            for status in self._statuses:
                for trunk, figures in status.trunk_figures().items():
                    if key in figures:
                        family.add_metric([status.id, trunk], figures[key])
            yield family
