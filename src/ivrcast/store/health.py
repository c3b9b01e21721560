"""What `/readyz` asks the database: is it there, is its schema current, are dialers alive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from ivrcast.store.engine import Database
from ivrcast.store.migrate import current_revisions, head_revisions
from ivrcast.store.tables import nodes

# A dialer node whose heartbeat is older than this many beats is dead: recovery ends its
# calls, and readiness does not count it.
DEAD_AFTER_BEATS = 3


@dataclass(frozen=True)
class StoreHealth:
    schema_current: bool
    schema_at: frozenset[str]
    schema_head: frozenset[str]
    fresh_nodes: int
    """Dialer nodes running (not stopped) whose last heartbeat is at or after `since`."""


def fresh_node_count(conn: Connection, *, since: datetime) -> int:
    """How many dialer nodes have not stopped and beat at or after `since`."""
    query = (
        select(func.count())
        .select_from(nodes)
        .where(nodes.c.stopped_at.is_(None), nodes.c.heartbeat_at >= since)
    )
    return int(conn.execute(query).scalar_one())


def store_health(db: Database, *, nodes_since: datetime) -> StoreHealth:
    """Read the schema's revision and the live dialer nodes in one transaction. Raises
    `DatabaseUnavailable` (a `StoreError`) when the database cannot be reached."""
    with db.read() as conn:
        at = current_revisions(conn)
        fresh = fresh_node_count(conn, since=nodes_since) if at else 0
    head = head_revisions()
    return StoreHealth(schema_current=at == head, schema_at=at, schema_head=head, fresh_nodes=fresh)
