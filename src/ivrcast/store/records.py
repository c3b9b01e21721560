"""Ending calls: the final state, the call record and its outbox row, in one transaction.

Cancel, expiry at the window's end and recovery after a crash end calls through
`finish_calls`; the dialer ends its outcomes in batches through
`dialing.finish_active_calls`, which keeps the same state guard. Both write records with
`write_records`, so "exactly one final state and exactly one record per call" rests on
two rules held here: a guarded UPDATE makes a call's transition happen at most once even
when two paths race (the loser's UPDATE matches no row and writes no record), and the
record is written in the same transaction as the transition.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, select

from ivrcast.store.tables import FINAL_STATES, accounts, call_records, calls, outbox, tasks

RecordBuilder = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]
"""Builds the payload from a finished call row and its task row (see `callbacks.record`)."""


def finish_calls(
    conn: Connection,
    where: ColumnElement[bool],
    *,
    from_states: Sequence[str],
    values: Mapping[str, Any],
    build_record: RecordBuilder,
    now: datetime,
) -> list[dict[str, Any]]:
    """Move the calls matching `where` and still in one of `from_states` to a final state.

    `values` holds at least `status` (a final state) and may carry the outcome's columns;
    `ended_at` defaults to `now`. Returns the finished call rows.
    """
    status = values["status"]
    if status not in FINAL_STATES:
        raise ValueError(f"{status!r} is not a final state")
    update = (
        calls.update()
        .where(and_(where, calls.c.status.in_(list(from_states))))
        .values({"ended_at": now, "node_id": None, **values})
        .returning(*calls.c)
    )
    finished = [dict(row._mapping) for row in conn.execute(update)]
    if finished:
        write_records(conn, finished, build_record=build_record, now=now)
    return finished


def write_records(
    conn: Connection,
    finished: Sequence[Mapping[str, Any]],
    *,
    build_record: RecordBuilder,
    now: datetime,
) -> None:
    """Insert one record per finished call and, where the account has a callback URL,
    its pending delivery."""
    task_ids = {row["task_id"] for row in finished}
    task_rows = {
        row.id: dict(row._mapping)
        for row in conn.execute(select(tasks).where(tasks.c.id.in_(task_ids)))
    }
    account_ids = {row["account_id"] for row in finished}
    callback_urls = {
        row.id: row.callback_url
        for row in conn.execute(
            select(accounts.c.id, accounts.c.callback_url).where(accounts.c.id.in_(account_ids))
        )
    }
    record_rows = [
        {
            "call_id": call["id"],
            "account_id": call["account_id"],
            "task_id": call["task_id"],
            "uuid": call["uuid"],
            "payload": json.dumps(
                build_record(call, task_rows[call["task_id"]]),
                ensure_ascii=False,
                separators=(",", ":"),
            ),
            "created_at": now,
        }
        for call in finished
    ]
    inserted = conn.execute(
        call_records.insert().returning(call_records.c.id, call_records.c.account_id),
        record_rows,
    ).all()
    deliveries = [
        {
            "record_id": record_id,
            "account_id": account_id,
            "url": callback_urls[account_id],
            "status": "pending",
            "next_attempt_at": now,
            "created_at": now,
        }
        for record_id, account_id in inserted
        if callback_urls.get(account_id)
    ]
    if deliveries:
        conn.execute(outbox.insert(), deliveries)
