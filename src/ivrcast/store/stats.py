"""Figures over every call, read at scrape time by the metrics endpoint."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from ivrcast.store.tables import ACTIVE_STATES, accounts, calls


def calls_by_state(conn: Connection) -> list[tuple[str, str, int]]:
    """(nationcode, status, count) over every call."""
    rows = conn.execute(
        select(calls.c.nationcode, calls.c.status, func.count()).group_by(
            calls.c.nationcode, calls.c.status
        )
    )
    return [(nation, status, count) for nation, status, count in rows]


def queue_depth(conn: Connection) -> list[tuple[str, str, int]]:
    """(nationcode, appid, queued calls) for calls waiting to be dialed."""
    rows = conn.execute(
        select(calls.c.nationcode, accounts.c.appid, func.count())
        .join(accounts, accounts.c.id == calls.c.account_id)
        .where(calls.c.status == "queued")
        .group_by(calls.c.nationcode, accounts.c.appid)
    )
    return [(nation, appid, count) for nation, appid, count in rows]


def active_by_trunk(conn: Connection) -> list[tuple[str, int]]:
    """(trunk, calls in progress) over every node; calls not yet sent have trunk ""."""
    rows = conn.execute(
        select(calls.c.trunk, func.count())
        .where(calls.c.status.in_(ACTIVE_STATES))
        .group_by(calls.c.trunk)
    )
    return [(trunk or "", count) for trunk, count in rows]
