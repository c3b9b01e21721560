"""The call-record payload, frozen when a call reaches its final state.

Field names and meanings are the vendor's documented call-record callback (shared
reference `call-record-callback.md`) so existing receivers keep working; ivrcast's own
additions have names of their own and never change the meaning of a vendor field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

CALLMETHOD_IVR = 6
"""The vendor's `callmethod` for IVR/group calls: every ivrcast record."""


def build_call_record(
    call: Mapping[str, Any], task: Mapping[str, Any], *, timezone: ZoneInfo
) -> dict[str, Any]:
    """The JSON object for one finished call.

    `call` and `task` are rows of the `calls` and `tasks` tables (the call already in its
    final state). A call never dialed (expired, canceled) has no start time: its vendor
    times are `""` and its durations 0, which is how the vendor reports calls that never
    left the platform.
    """
    started: datetime | None = call["invited_at"]
    answered: datetime | None = call["answered_at"]
    ended: datetime | None = call["ended_at"] if started else None
    duration = _seconds(started, ended)
    billsec = _seconds(answered, ended)
    keys: str = call["keys"] or ""
    return {
        "callmethod": CALLMETHOD_IVR,
        "type": "callout",
        "direction": "outbound",
        "starttime": _local(started, timezone),
        "answertime": _local(answered, timezone),
        "endtime": _local(ended, timezone),
        "duration": duration,
        "billsec": billsec,
        "hangupdirection": call["hangup_direction"] or 0,
        "hangupcause": call["hangup_cause"] or 0,
        "disnumber": call["disnumber"] or "",
        "destnumber": call["number"].lstrip("+"),
        "uuid": call["uuid"],
        "userkey": keys,
        "customuuid": task["customuuid"],
        "chengshudu": task["chengshudu"],
        "taskid": task["id"],
        "round": call["round"],
        "recordurl": "",
        # ivrcast's extras.
        "status": call["status"],
        "sipcode": call["sip_code"],
        "sipreason": call["sip_reason"] or "",
        "keys": list(keys),
        "nationcode": call["nationcode"],
        "e164": call["number"],
        "trunk": call["trunk"] or "",
        "queuedat": _iso(call["queued_at"]),
        "startedat": _iso(started),
        "answeredat": _iso(answered),
        "endedat": _iso(call["ended_at"]),
    }


def _seconds(start: datetime | None, end: datetime | None) -> int:
    if start is None or end is None:
        return 0
    # Billing rounds a started second up, as carriers do.
    micros = (end - start) // timedelta(microseconds=1)
    return max(0, -(-micros // 1_000_000))


def _local(at: datetime | None, timezone: ZoneInfo) -> str:
    return "" if at is None else at.astimezone(timezone).strftime("%Y-%m-%d %H:%M:%S")


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
