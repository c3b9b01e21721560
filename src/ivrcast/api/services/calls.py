"""Calls: filtered lists with cursors, CSV export, one call's timeline."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ivrcast.api import params
from ivrcast.errors import NotFoundError, ValidationError
from ivrcast.store.calls import EXPORT_COLUMNS, CallFilter
from ivrcast.store.tables import CALL_STATES


class CallNotFound(NotFoundError):
    """No such call."""


def call_filter(account_id: int | None, query: params.Params) -> CallFilter:
    status = params.optional(query, "status")
    if status is not None and status not in CALL_STATES:
        raise ValidationError("status", f"must be one of {', '.join(CALL_STATES)}; got {status!r}")
    return CallFilter(
        account_id=account_id,
        task_id=params.optional(query, "task"),
        status=status,
        number=params.optional(query, "number"),
        since=instant(query, "since"),
        until=instant(query, "until"),
    )


def instant(query: params.Params, name: str) -> datetime | None:
    """An ISO 8601 time with its zone, within `params.bounded_instant`'s bounds, in UTC."""
    raw = params.optional(query, name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(name, f"must be an ISO 8601 time, got {raw!r}") from None
    if value.tzinfo is None:
        raise ValidationError(name, "must carry a zone (Z or +hh:mm)")
    return params.bounded_instant(name, value, raw)


def describe_call(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in row.items()
        if key not in ("id", "node_id", "account_id")
    }


def csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """CSV text a row at a time, so an export of any size streams in flat memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row[c].isoformat()
                if isinstance(row[c], datetime)
                else ("" if row[c] is None else row[c])
                for c in EXPORT_COLUMNS
            ]
        )
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
