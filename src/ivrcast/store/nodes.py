"""Dialer nodes: each dialer process's row and heartbeat, and finding dead ones.

Recovery (`dialer.recovery`) reads these to end the calls a dead node held.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from ivrcast.store.tables import ACTIVE_STATES, calls, nodes


@dataclass(frozen=True)
class NodeRow:
    id: str
    hostname: str
    pid: int
    heartbeat_at: datetime


def register_node(
    conn: Connection, *, node_id: str, hostname: str, pid: int, now: datetime
) -> None:
    """A dialer process starts: its row, first heartbeat now."""
    conn.execute(
        nodes.insert().values(
            id=node_id, hostname=hostname, pid=pid, started_at=now, heartbeat_at=now
        )
    )


def heartbeat(conn: Connection, *, node_id: str, now: datetime, report: str | None = None) -> None:
    """The node is alive at `now`; `report` (JSON, `dialer.node_report`) replaces the
    last one when given."""
    values: dict[str, object] = {"heartbeat_at": now}
    if report is not None:
        values["stats"] = report
    conn.execute(nodes.update().where(nodes.c.id == node_id).values(**values))


def stop_node(conn: Connection, *, node_id: str, now: datetime) -> None:
    """The node stopped cleanly (or was found dead): it holds no calls any more."""
    conn.execute(
        nodes.update()
        .where(nodes.c.id == node_id, nodes.c.stopped_at.is_(None))
        .values(stopped_at=now)
    )


def running_nodes(conn: Connection) -> list[NodeRow]:
    """Nodes that have not stopped, live or not."""
    rows = conn.execute(
        select(nodes.c.id, nodes.c.hostname, nodes.c.pid, nodes.c.heartbeat_at).where(
            nodes.c.stopped_at.is_(None)
        )
    )
    return [NodeRow(**row._mapping) for row in rows]


def nodes_holding_calls(conn: Connection, exclude: str) -> set[str]:
    """Ids of nodes (other than `exclude`) that hold active calls, stopped or not, so
    recovery also catches a node that stopped without ending its calls."""
    rows = conn.execute(
        select(calls.c.node_id)
        .where(
            calls.c.status.in_(ACTIVE_STATES),
            calls.c.node_id.is_not(None),
            calls.c.node_id != exclude,
        )
        .distinct()
    )
    return {node_id for (node_id,) in rows}


def stopped_node_ids(conn: Connection, node_ids: Collection[str]) -> set[str]:
    if not node_ids:
        return set()
    rows = conn.execute(
        select(nodes.c.id).where(nodes.c.id.in_(list(node_ids)), nodes.c.stopped_at.is_not(None))
    )
    known = conn.execute(select(nodes.c.id).where(nodes.c.id.in_(list(node_ids))))
    unknown = set(node_ids) - {node_id for (node_id,) in known}
    # A node id with no row at all was never registered (or its row was removed): no
    # process can be heartbeating for it.
    return {node_id for (node_id,) in rows} | unknown
