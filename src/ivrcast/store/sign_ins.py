"""Failed sign-ins, counted per (appid, client address) over a sliding window.

Kept in the database rather than in each process's memory, so that a fleet of API
processes on one PostgreSQL (or several workers on one SQLite file) share one count:
an attacker gains nothing by having the load balancer spread the guesses.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select

from ivrcast.store.tables import failed_sign_ins

KEY_LENGTH = 64
"""Both parts of the key are cut to the columns' length (an appid is at most 64)."""


def recent_failures(
    conn: Connection, *, appid: str, client_ip: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many failures the pair had after `since`, and when the oldest of them was."""
    count, oldest = conn.execute(
        select(func.count(), func.min(failed_sign_ins.c.failed_at)).where(
            failed_sign_ins.c.appid == appid[:KEY_LENGTH],
            failed_sign_ins.c.client_ip == client_ip[:KEY_LENGTH],
            failed_sign_ins.c.failed_at > since,
        )
    ).one()
    return int(count), oldest


def record_failure(
    conn: Connection, *, appid: str, client_ip: str, now: datetime, forget_before: datetime
) -> None:
    """Count one failure for the pair, and drop everyone's failures older than the window."""
    conn.execute(delete(failed_sign_ins).where(failed_sign_ins.c.failed_at <= forget_before))
    conn.execute(
        insert(failed_sign_ins).values(
            appid=appid[:KEY_LENGTH], client_ip=client_ip[:KEY_LENGTH], failed_at=now
        )
    )
