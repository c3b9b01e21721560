"""The call-record payload, frozen when a call reaches its final state.

Field names and meanings are the vendor's documented call-record callback (shared
reference `call-record-callback.md`) so existing receivers keep working; ivrcast's own
additions have names of their own and never change the meaning of a vendor field.
`docs/callbacks.md` lists every field.

`hangupcause` and `hangupdirection` (codes of `ivrcast.hangup`) come from the call row,
where the engine's outcome table (`ivrcast.sip.outcome`, documented in
`docs/telephony.md`) put them. The final states the platform reaches without the engine
(a call never dialed, or cut off by a crash) carry no codes, and get theirs from
`PLATFORM_CODES` here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from ivrcast.config import Settings
from ivrcast.hangup import BY_CALLER, CANCELLED, SERVER_HUNG_UP, TIMER_EXPIRED, UNKNOWN
from ivrcast.recordings import RecordingLinks

CALLMETHOD_IVR = 6
"""The vendor's `callmethod` for IVR/group calls: every ivrcast record."""

PLATFORM_CODES: dict[str, tuple[int, int]] = {
    # status: (hangupcause, hangupdirection). The caller's side (ivrcast) ended each.
    "canceled": (CANCELLED, BY_CALLER),  # the task was canceled before dialing
    "expired": (TIMER_EXPIRED, BY_CALLER),  # todayonly=1 and the calling window closed
    "interrupted": (SERVER_HUNG_UP, BY_CALLER),  # the dialer stopped mid-call (crash)
    "suppressed": (CANCELLED, BY_CALLER),  # the number is on a do-not-call list
}


class CallRecord(TypedDict):
    """The callback payload of one call: every field `docs/callbacks.md` lists."""

    # The vendor's fields.
    callmethod: int
    type: str
    direction: str
    starttime: str
    answertime: str
    endtime: str
    duration: int
    billsec: int
    hangupdirection: int
    hangupcause: int
    disnumber: str
    destnumber: str
    uuid: str
    userkey: str
    customuuid: str
    chengshudu: str
    taskid: str
    round: int
    recordurl: str
    # The record's number, the same the pull interfaces (`/api/cdrs`, GetBill) show.
    id: int
    # The vendor's PBX bookkeeping fields; ivrcast has no PBX, so they go out empty
    # (receivers written for the vendor may read them unconditionally).
    companycode: str
    memberid: str
    userid: str
    crmid: str
    extnumber: str
    recordfilename: str
    downloadip: str
    # ivrcast's extras.
    status: str
    sipcode: int | None
    sipreason: str
    q850cause: int | None
    keys: list[str]
    nationcode: str
    e164: str
    trunk: str
    queuedtime_iso: str | None
    starttime_iso: str | None
    answertime_iso: str | None
    endtime_iso: str | None
    # When the call reached its final state, also for calls never dialed.
    finishtime_iso: str | None
    # No further round of this number follows (retry rounds).
    final: bool
    # Answering-machine detection (amd=1): human, machine or unknown, and how long the
    # decision took from the answer; null when it did not run.
    answeredby: str | None
    amdms: int | None


def record_builder(
    settings: Settings, server_key: bytes
) -> Callable[[Mapping[str, Any], Mapping[str, Any]], CallRecord]:
    """`build_call_record` as `settings` configure it, for `finish_calls`: the zone of
    the times, and the signed links to recordings."""
    links = RecordingLinks.for_settings(settings, server_key)
    return functools.partial(
        build_call_record, timezone=ZoneInfo(settings.callbacks.timezone), links=links
    )


def build_call_record(
    call: Mapping[str, Any],
    task: Mapping[str, Any],
    *,
    timezone: ZoneInfo,
    links: RecordingLinks | None = None,
) -> CallRecord:
    """The JSON object for one finished call.

    `call` and `task` are rows of the `calls` and `tasks` tables (the call already in its
    final state). A call never dialed (expired, canceled) keeps the vendor's types: its
    `starttime` and `endtime` are both the moment it reached its final state, so a
    receiver parsing them as times never meets `""`, and `duration` and `billsec` are 0;
    `answertime` is `""`, as for every call not answered. The ISO extras tell the two
    apart: `starttime_iso` and `endtime_iso` are null for a call never dialed.

    `recordurl` is the signed link to the call's recording when one was written (and
    `links` are given), `""` otherwise, as the vendor sends for unrecorded calls.
    """
    started: datetime | None = call["invited_at"]
    answered: datetime | None = call["answered_at"]
    ended: datetime | None = call["ended_at"] if started else None
    finished: datetime = call["ended_at"]
    keys: str = call["keys"] or ""
    cause, direction = _hangup_codes(call)
    return CallRecord(
        callmethod=CALLMETHOD_IVR,
        type="callout",
        direction="outbound",
        starttime=_local(started or finished, timezone),
        answertime=_local(answered, timezone),
        endtime=_local(ended or finished, timezone),
        duration=_seconds(started, ended),
        billsec=_seconds(answered, ended),
        hangupdirection=direction,
        hangupcause=cause,
        disnumber=call["disnumber"] or "",
        # As the customer wrote it; rows stored before that was kept give E.164 digits.
        destnumber=call["submitted_number"] or call["number"].lstrip("+"),
        uuid=call["uuid"],
        userkey=keys,
        customuuid=task["customuuid"],
        chengshudu=task["chengshudu"],
        taskid=task["id"],
        round=call["round"],
        recordurl=(
            links.url(call["uuid"], finished) if links is not None and call.get("recorded") else ""
        ),
        id=call["id"],
        companycode="",
        memberid="",
        userid="",
        crmid="",
        extnumber="",
        recordfilename="",
        downloadip="",
        status=call["status"],
        sipcode=call["sip_code"],
        sipreason=call["sip_reason"] or "",
        q850cause=call["q850_cause"],
        keys=list(keys),
        nationcode=call["nationcode"],
        e164=call["number"],
        trunk=call["trunk"] or "",
        queuedtime_iso=_iso(call["queued_at"], timezone),
        starttime_iso=_iso(started, timezone),
        answertime_iso=_iso(answered, timezone),
        endtime_iso=_iso(ended, timezone),
        finishtime_iso=_iso(call["ended_at"], timezone),
        final=bool(call["final"]),
        answeredby=call.get("answered_by"),
        amdms=call.get("amd_ms"),
    )


def _hangup_codes(call: Mapping[str, Any]) -> tuple[int, int]:
    # Engine outcomes always carry both codes; 10031 "unknown" marks a row that lost them.
    cause, direction = PLATFORM_CODES.get(call["status"], (UNKNOWN, BY_CALLER))
    return call["hangup_cause"] or cause, call["hangup_direction"] or direction


def _seconds(start: datetime | None, end: datetime | None) -> int:
    if start is None or end is None:
        return 0
    # Billing rounds a started second up, as carriers do.
    micros = (end - start) // timedelta(microseconds=1)
    return max(0, -(-micros // 1_000_000))


def _local(at: datetime | None, timezone: ZoneInfo) -> str:
    return "" if at is None else at.astimezone(timezone).strftime("%Y-%m-%d %H:%M:%S")


def _iso(at: datetime | None, timezone: ZoneInfo) -> str | None:
    """ISO 8601 in the configured zone with its offset (`Z` for UTC): the same instant as
    the vendor field beside it, unambiguous."""
    if at is None:
        return None
    text = at.astimezone(timezone).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
