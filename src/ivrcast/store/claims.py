"""Claiming rows of a work queue (calls to dial, callbacks to send): one shape for all.

A claim is two statements in the caller's transaction:

1. `SELECT id ... ORDER BY ... LIMIT n FOR UPDATE SKIP LOCKED`: lock up to n rows that
   no other claimer holds, without waiting for those it does;
2. `UPDATE ... WHERE id IN (<those ids>) RETURNING ...`: move them.

Not the single statement `UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP
LOCKED)`. PostgreSQL does not promise to run such a sub-SELECT once: when the plan
re-executes it (for example as the inner side of a nested loop), each run skips the rows
the UPDATE has already locked and returns the next n, so the statement can take far more
than n rows (PostgreSQL BUG #15715). The usual fix is to evaluate the sub-SELECT once: in
a materialised WITH, or, as here, in a statement of its own. A claimer that takes more
rows than it has room for leaves them leased to nobody until the lease (or the dialer's
recovery) ends. The second statement runs on rows this transaction already holds
locked, so no other claimer can take them between the two, and the ids are a list of
literals: nothing is re-executed.

On SQLite the lock clause is dropped by SQLAlchemy, and `Database.write()`'s `BEGIN
IMMEDIATE` serialises claimers instead.

So the rows chosen still match the SELECT's WHERE when the UPDATE runs (on PostgreSQL
the lock re-checks it on the row's newest version, and skips a row that no longer
matches), and the UPDATE needs no guard. One on an indexed column is worse than
useless on SQLite: with no statistics the planner expects an equality to match about
ten rows, so for `status = 'queued' AND id IN (five or more ids)` it reads the status
index's whole `queued` range (every queued row) rather than look the ids up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, Row, Select, Update


def claim_rows(
    conn: Connection, *, chosen: Select[tuple[Any]], update: Update, id_column: Column[Any]
) -> list[Row[Any]]:
    """Lock the ids `chosen` selects (it carries its own ORDER BY and LIMIT) skipping rows
    locked elsewhere, then run `update` (its SET and RETURNING) on exactly those."""
    ids = list(conn.scalars(chosen.with_for_update(skip_locked=True)))
    if not ids:
        return []
    return list(conn.execute(update.where(id_column.in_(ids))).all())
