"""The call record of each finished call and its pending delivery.

`transitions.finish_calls`, the one path by which calls reach a final state, calls
`write_records` in the transaction of the transition, so a call never has a final
state without its record, nor a record without a final state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ivrcast.store.outbox_wakeup import outbox_due
from ivrcast.store.tables import accounts, call_records, outbox, tasks

RecordBuilder = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, object]]
"""Builds the payload from a finished call row and its task row (see `callbacks.record`)."""


def write_records(
    conn: Connection,
    finished: Sequence[Mapping[str, Any]],
    *,
    build_record: RecordBuilder,
    now: datetime,
) -> None:
    """Insert one record per finished call and, where the account has a callback URL,
    its pending delivery (due now: the senders are woken when this commits)."""
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
        outbox_due(conn)
