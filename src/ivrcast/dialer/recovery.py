"""Crash recovery: calls held by a dialer that died end as `interrupted`, never redialed.

A dialer node is dead when it has stopped (its row says so), when its heartbeat is
older than `DEAD_AFTER_BEATS` beats, or at once when it ran on this host and its process
is gone (the usual case: the service was killed and restarted). Its dialing, ringing
and answered calls may already have reached the phone, so they are ended with a record
rather than queued again: a number is dialed at most once per round.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ivrcast.store import nodes, transitions
from ivrcast.store.engine import Connection
from ivrcast.store.health import DEAD_AFTER_BEATS
from ivrcast.store.records import RecordBuilder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovery:
    interrupted: int
    dead_nodes: tuple[str, ...]
    live_nodes: int
    """Nodes with a fresh heartbeat, this one included: they share each trunk."""


def process_alive(pid: int) -> bool:
    """Whether a process of this host is running (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # The state follows the parenthesised command name, which may itself hold spaces.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def recover(
    conn: Connection,
    *,
    node_id: str,
    hostname: str,
    heartbeat_seconds: float,
    build_record: RecordBuilder,
    now: datetime,
) -> Recovery:
    """Find dead nodes, mark them stopped, and interrupt the calls they held."""
    stale = now - timedelta(seconds=DEAD_AFTER_BEATS * heartbeat_seconds)
    dead: list[str] = []
    live = 0
    for node in nodes.running_nodes(conn):
        if node.id == node_id:
            live += 1
            continue
        gone = node.hostname == hostname and not process_alive(node.pid)
        if gone or node.heartbeat_at < stale:
            dead.append(node.id)
            nodes.stop_node(conn, node_id=node.id, now=now)
        else:
            live += 1
    holders = nodes.nodes_holding_calls(conn, exclude=node_id)
    stopped = nodes.stopped_node_ids(conn, holders)
    interrupted = transitions.interrupt_calls(conn, stopped, build_record=build_record, now=now)
    if dead or interrupted:
        logger.warning(
            "recovered from %d dead dialer node(s): %d calls interrupted",
            len(dead),
            interrupted,
            extra={"event": "dialer.recovered", "nodes": dead, "interrupted": interrupted},
        )
    return Recovery(interrupted=interrupted, dead_nodes=tuple(dead), live_nodes=max(live, 1))
