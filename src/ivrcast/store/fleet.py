"""The fleet as the database knows it: every dialer node with its last heartbeat and the
report it sent with it (`dialer.node_report`), for the console and `/metrics`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ivrcast.store.health import DEAD_AFTER_BEATS
from ivrcast.store.tables import nodes


@dataclass(frozen=True)
class NodeStatus:
    id: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    report: dict[str, Any]
    """The node's last report; empty before its first heartbeat with one."""

    def heartbeat_age(self, now: datetime) -> float:
        return max(0.0, (now - self.heartbeat_at).total_seconds())

    def state(self, now: datetime, heartbeat_seconds: float) -> str:
        """`live`; `late` (no heartbeat for `DEAD_AFTER_BEATS` beats: the other nodes are
        about to declare it dead); or `stopped`."""
        if self.stopped_at is not None:
            return "stopped"
        late = self.heartbeat_age(now) > DEAD_AFTER_BEATS * heartbeat_seconds
        return "late" if late else "live"

    def trunk_figures(self) -> dict[str, dict[str, float]]:
        """Per trunk, the numbers the node reported (channels, max_cps, active, cps…)."""
        trunks = self.report.get("trunks")
        if not isinstance(trunks, dict):
            return {}
        return {
            name: {k: float(v) for k, v in figures.items() if isinstance(v, int | float)}
            for name, figures in trunks.items()
            if isinstance(figures, dict)
        }


def node_statuses(conn: Connection, *, stopped_since: datetime) -> list[NodeStatus]:
    """Nodes still running (live or not), and those stopped at or after `stopped_since`,
    newest first."""
    rows = conn.execute(
        select(nodes)
        .where(nodes.c.stopped_at.is_(None) | (nodes.c.stopped_at >= stopped_since))
        .order_by(nodes.c.started_at.desc())
    )
    return [
        NodeStatus(
            id=row.id,
            hostname=row.hostname,
            pid=row.pid,
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            stopped_at=row.stopped_at,
            report=_report(row.stats),
        )
        for row in rows
    ]


def _report(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
