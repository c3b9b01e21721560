"""Metric snapshots: how the dialer process's metrics reach the API's `/metrics`.

The dialer runs in a process of its own, so its counters cannot live in the API's
registry. Each dialer keeps a private registry and writes it, in the Prometheus text
format, to `<data_dir>/metrics/dialer-<node>.prom` every second (written aside and
renamed, so a reader never sees half a file). `/metrics` in the API merges the files
of live dialers (`read_snapshots`) with gauges it derives from the database at scrape
time. A dialer on another host writes into its own data directory: scrape each host.

The file format is the whole contract between the two processes, so it lives here,
below both: the API never imports the dialer, nor the dialer the API.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

SNAPSHOT_DIR = "metrics"
STALE_AFTER = 30.0  # a snapshot older than this belongs to a dialer that is gone


def snapshot_dir(data_dir: Path) -> Path:
    return data_dir / SNAPSHOT_DIR


def _snapshot_path(data_dir: Path, node: str) -> Path:
    return snapshot_dir(data_dir) / f"dialer-{node}.prom"


def write_snapshot(registry: CollectorRegistry, data_dir: Path, node: str) -> None:
    """Write the registry of dialer `node`, atomically replacing its last snapshot."""
    target = _snapshot_path(data_dir, node)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_bytes(generate_latest(registry))
    os.replace(temporary, target)


def remove_snapshot(data_dir: Path, node: str) -> None:
    _snapshot_path(data_dir, node).unlink(missing_ok=True)


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
