"""Calls: the filterable table, its CSV export, and one call's timeline."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from ivrcast.api.params import EARLIEST, LATEST
from ivrcast.api.services.calls import csv_lines
from ivrcast.console.web import (
    Ctx,
    CurrentViewer,
    Viewer,
    account_scope,
    not_found,
    page_cursor,
    render,
)
from ivrcast.recordings import recording_path
from ivrcast.store.accounts import appids_by_account
from ivrcast.store.calls import CallFilter, call_story, iter_calls, list_calls
from ivrcast.store.tables import CALL_STATES

router = APIRouter()

PAGE_SIZE = 100
FILTERS = ("task", "status", "number", "since", "until", "account")


def _day(value: str | None, zone: ZoneInfo, *, end: bool) -> datetime | None:
    """A date field (YYYY-MM-DD, the display zone's day) as an instant; `until` includes
    its whole day."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    if not EARLIEST.date() <= day < LATEST.date():
        return None
    start = datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=zone)
    return start


def call_filter(
    request: Request, viewer: Viewer, appids: dict[int, str], zone: ZoneInfo
) -> CallFilter:
    query = request.query_params
    status = query.get("status") or None
    return CallFilter(
        account_id=account_scope(request, viewer, appids),
        task_id=(query.get("task") or "").strip() or None,
        status=status if status in CALL_STATES else None,
        number=(query.get("number") or "").strip() or None,
        since=_day(query.get("since"), zone, end=False),
        until=_day(query.get("until"), zone, end=True),
    )


def _zone(ctx: Any) -> ZoneInfo:
    return ZoneInfo(ctx.settings.callbacks.timezone)


@router.get("/calls")
async def call_list(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    before_id = page_cursor(request)

    def read() -> dict[str, Any]:
        with ctx.db.read() as conn:
            appids = appids_by_account(conn)
            where = call_filter(request, viewer, appids, _zone(ctx))
            rows = list_calls(conn, where, before_id=before_id, limit=PAGE_SIZE)
        for row in rows:
            row["appid"] = appids.get(row["account_id"], "")
        return {"rows": rows, "appids": sorted(appids.values())}

    data = await ctx.in_thread(read)
    filters = {name: request.query_params.get(name, "") for name in FILTERS}
    present = {name: value for name, value in filters.items() if value}
    rows = data["rows"]
    return render(
        request,
        viewer,
        "calls.html",
        {
            "page": "calls",
            "calls": rows,
            "filters": filters,
            "query": present,
            "older": rows[-1]["id"] if len(rows) == PAGE_SIZE else None,
            "states": CALL_STATES,
            "appids": data["appids"],
        },
    )


@router.get("/calls.csv")
async def call_export(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    def where() -> CallFilter:
        with ctx.db.read() as conn:
            return call_filter(request, viewer, appids_by_account(conn), _zone(ctx))

    chosen = await ctx.in_thread(where)
    # Read page by page while streaming: flat memory for an export of any size.
    return StreamingResponse(
        csv_lines(iter_calls(ctx.db, chosen)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="calls.csv"'},
    )


@router.get("/calls/{uuid}")
async def call_page(uuid: str, request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    def read() -> tuple[dict[str, Any] | None, dict[int, str]]:
        with ctx.db.read() as conn:
            return call_story(conn, viewer.account_id, uuid), appids_by_account(conn)

    story, appids = await ctx.in_thread(read)
    if story is None:
        return not_found(request, viewer, "No such call.")
    call = story["call"]
    record = json.loads(story["record"]["payload"]) if story["record"] else None
    return render(
        request,
        viewer,
        "call.html",
        {
            "page": "calls",
            "call": call,
            "appid": appids.get(call["account_id"], ""),
            "events": timeline(story),
            "record": record,
            "record_json": json.dumps(record, indent=2, ensure_ascii=False) if record else "",
            "delivery": story["delivery"],
        },
    )


@router.get("/calls/{uuid}/recording")
async def call_recording(uuid: str, request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    """The call's recording, for the timeline's player: served from the console's own
    origin (its CSP allows nothing else) to whoever may see the call."""

    def read() -> dict[str, Any] | None:
        with ctx.db.read() as conn:
            return call_story(conn, viewer.account_id, uuid)

    story = await ctx.in_thread(read)
    if story is None or not story["call"]["recorded"]:
        return not_found(request, viewer, "No recording of this call.")
    path = recording_path(ctx.settings.recordings_dir, story["call"]["uuid"])
    if not path.is_file():
        return not_found(request, viewer, "The recording has been deleted.")
    return FileResponse(path, media_type="audio/wav")


def timeline(story: dict[str, Any]) -> list[dict[str, Any]]:
    """The call's moments in order: each with a time (None when not recorded) and a text."""
    call = story["call"]
    events: list[dict[str, Any]] = []

    def add(when: datetime | None, what: str, detail: str = "", kind: str = "") -> None:
        if when is not None:
            events.append({"when": when, "what": what, "detail": detail, "kind": kind})

    add(call["queued_at"], "Queued", f"round {call['round']}")
    add(call["claimed_at"], "Dialing", "claimed by the dialer")
    trunk = call["trunk"] or ""
    caller = f"caller ID {call['disnumber']}" if call["disnumber"] else ""
    add(
        call["invited_at"],
        "INVITE sent",
        ", ".join(x for x in (trunk and f"trunk {trunk}", caller) if x),
    )
    add(call["ringing_at"], "Ringing")
    add(call["answered_at"], "Answered", f"codec {call['codec']}" if call["codec"] else "", "good")
    if call["keys"]:
        # Keys carry no time of their own: they fall between the answer and the hang-up.
        events.append(
            {
                "when": call["answered_at"],
                "what": "Keys pressed",
                "detail": " ".join(call["keys"]),
                "kind": "good",
            }
        )
    if call["ended_at"] is not None:
        sip = (
            f"SIP {call['sip_code']} {call['sip_reason'] or ''}".strip() if call["sip_code"] else ""
        )
        kind = "good" if call["status"] == "completed" else "bad"
        add(call["ended_at"], f"Ended: {call['status'].replace('_', ' ')}", sip, kind)
    record = story["record"]
    if record is not None:
        add(record["created_at"], "Call record written", f"uuid {record['uuid']}")
    delivery = story["delivery"]
    if delivery is not None:
        add(delivery["created_at"], "Callback queued", delivery["url"])
        attempts = delivery["attempts"]
        if delivery["status"] == "delivered":
            add(
                delivery["delivered_at"],
                "Callback delivered",
                f"HTTP {delivery['last_status']} after {attempts} attempt(s)",
                "good",
            )
        elif delivery["status"] == "dead":
            events.append(
                {
                    "when": None,
                    "what": "Callback given up",
                    "detail": f"after {attempts} attempt(s): {delivery['last_error'] or ''}",
                    "kind": "bad",
                }
            )
        elif attempts:
            add(
                delivery["next_attempt_at"],
                "Callback retry due",
                f"{attempts} failed attempt(s); last: {delivery['last_error'] or ''}",
                "bad",
            )
    return events
