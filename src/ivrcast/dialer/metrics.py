"""The dialer process's own metrics, and how the API process gets to them.

The dialer runs in a process of its own, so its counters cannot live in the API's
registry. Each dialer keeps a private registry and writes it, in the Prometheus text
format, to `<data_dir>/metrics/dialer-<node>.prom` every second (written aside and
renamed, so a reader never sees half a file). `/metrics` in the API merges the files
of live dialers (`read_snapshots`) with gauges it derives from the database at scrape
time. A dialer on another host writes into its own data directory: scrape each host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

SNAPSHOT_DIR = "metrics"
SNAPSHOT_INTERVAL = 1.0
STALE_AFTER = 30.0  # a snapshot older than this belongs to a dialer that is gone


def snapshot_dir(data_dir: Path) -> Path:
    return data_dir / SNAPSHOT_DIR


class DialerMetrics:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.registry = CollectorRegistry(auto_describe=True)
        self.invites = Counter(
            "ivrcast_dialer_invites",
            "INVITEs sent (first attempts and failovers); its rate is calls per second.",
            ["trunk"],
            registry=self.registry,
        )
        self.finished = Counter(
            "ivrcast_dialer_calls_finished",
            "Calls this dialer ended, by final state.",
            ["trunk", "status"],
            registry=self.registry,
        )
        self.failovers = Counter(
            "ivrcast_dialer_failovers",
            "Calls moved to another trunk after a trunk failure.",
            ["from_trunk", "to_trunk"],
            registry=self.registry,
        )
        self.rtp_rejected = Counter(
            "ivrcast_dialer_rtp_rejected",
            "RTP packets dropped because a source other than the call's far end sent them.",
            ["trunk"],
            registry=self.registry,
        )
        self.active = Gauge(
            "ivrcast_dialer_active_calls",
            "Calls in progress on this dialer (INVITE sent, not ended).",
            ["trunk"],
            registry=self.registry,
        )
        self.claim_seconds = Histogram(
            "ivrcast_dialer_claim_seconds",
            "Duration of one claim round (due tasks, expiry, claim) in the database.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.claimed = Counter(
            "ivrcast_dialer_claimed", "Calls claimed for dialing.", registry=self.registry
        )
        self.queue_wait = Histogram(
            "ivrcast_dialer_queue_wait_seconds",
            "Time from a call's submission to its claim.",
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
            registry=self.registry,
        )

    def write_snapshot(self, data_dir: Path) -> None:
        directory = snapshot_dir(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"dialer-{self.node_id}.prom"
        temporary = target.with_suffix(".tmp")
        temporary.write_bytes(generate_latest(self.registry))
        os.replace(temporary, target)

    def remove_snapshot(self, data_dir: Path) -> None:
        (snapshot_dir(data_dir) / f"dialer-{self.node_id}.prom").unlink(missing_ok=True)


def read_snapshots(data_dir: Path, *, now: float | None = None) -> Iterator[Metric]:
    """The metric families of every live dialer's snapshot, merged by name, each sample
    labelled with its `node`."""
    directory = snapshot_dir(data_dir)
    if not directory.is_dir():
        return
    now = time.time() if now is None else now
    merged: dict[str, Metric] = {}
    for path in sorted(directory.glob("dialer-*.prom")):
        try:
            if now - path.stat().st_mtime > STALE_AFTER:
                continue
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue  # removed between the listing and the read: that dialer stopped
        node = path.stem.removeprefix("dialer-")
        for family in text_string_to_metric_families(text):
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                into.add_sample(sample.name, {**sample.labels, "node": node}, sample.value)
    yield from merged.values()
