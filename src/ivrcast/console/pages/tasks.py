"""Tasks: the list with progress, one task's page (live), cancel, pause and resume, and
sending a broadcast."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ivrcast.api.envelope import classify
from ivrcast.api.forms import read_form
from ivrcast.api.services import play_voice
from ivrcast.api.services.tasks import change_status
from ivrcast.console.pages.dashboard import event_stream
from ivrcast.console.web import (
    PREFIX,
    Ctx,
    CurrentViewer,
    PostingViewer,
    account_scope,
    client_ip,
    error_text,
    for_account,
    not_found,
    operator_refused,
    page_instant,
    redirect,
    render,
)
from ivrcast.errors import IvrcastError, NotFoundError
from ivrcast.numbers import NATIONS
from ivrcast.store.accounts import appids_by_account
from ivrcast.store.calls import CallFilter, list_calls
from ivrcast.store.tables import CALL_STATES, FINAL_STATES
from ivrcast.store.tasks import (
    TaskProgress,
    cancel_task,
    get_task,
    list_tasks,
    task_counts,
    task_progress,
    task_voice_names,
)
from ivrcast.store.voices import list_voices

router = APIRouter()

PAGE_SIZE = 50
TASK_CALLS_SHOWN = 50
SEND_FIELDS = (
    "nationcode",
    "voicefile",
    "destnumber",
    "todayonly",
    "waittime",
    "conntime",
    "disnumber",
    "chengshudu",
    "customuuid",
    "requestid",
    "retries",
    "retryinterval",
    "retryon",
    "amdaction",
)


def progress_view(progress: TaskProgress) -> dict[str, Any]:
    """What the page (and its live updates) show of a task's progress."""
    total = progress.total
    finished = progress.finished
    return {
        "status": progress.status,
        "total": total,
        "finished": finished,
        "percent": 100 if total == 0 else int(100 * finished / total),
        "counts": {state: n for state, n in progress.counts.items() if n},
        "rounds": {str(number): n for number, n in progress.rounds.items()},
        "done": progress.status not in ("active", "paused")
        and not any(progress.counts[s] for s in ("dialing", "ringing", "answered")),
    }


@router.get("/tasks")
async def task_list(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    before = page_instant(request)

    def read() -> dict[str, Any]:
        with ctx.db.read() as conn:
            appids = appids_by_account(conn)
            scope = account_scope(request, viewer, appids)
            rows = list_tasks(conn, scope, limit=PAGE_SIZE, before=before)
            ids = [row["id"] for row in rows]
            counts = task_counts(conn, ids)
            voices = task_voice_names(conn, ids)
        for row in rows:
            # Calls of every round: with retry rounds more calls than numbers may end.
            done = min(row["total"], sum(counts[row["id"]].get(s, 0) for s in FINAL_STATES))
            row["counts"] = counts[row["id"]]
            row["finished"] = done
            row["percent"] = 100 if not row["total"] else int(100 * done / row["total"])
            row["voice"] = voices.get(row["id"], "")
            row["appid"] = appids.get(row["account_id"], "")
        return {"rows": rows, "appids": appids}

    data = await ctx.in_thread(read)
    rows = data["rows"]
    older = rows[-1]["created_at"].isoformat() if len(rows) == PAGE_SIZE else None
    return render(
        request,
        viewer,
        "tasks.html",
        {
            "page": "tasks",
            "tasks": rows,
            "older": older,
            "appids": sorted(data["appids"].values()),
            "account": request.query_params.get("account", ""),
            "notice": request.query_params.get("notice"),
        },
    )


@router.get("/tasks/{task_id}")
async def task_page(task_id: str, request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    def read() -> dict[str, Any]:
        with ctx.db.read() as conn:
            task = get_task(conn, viewer.account_id, task_id)
            progress = task_progress(conn, viewer.account_id, task_id)
            voice = task_voice_names(conn, [task_id]).get(task_id, "")
            appid = appids_by_account(conn).get(task["account_id"], "")
            calls = list_calls(
                conn, CallFilter(viewer.account_id, task_id=task_id), limit=TASK_CALLS_SHOWN
            )
        return {
            "task": task,
            "progress": progress_view(progress),
            "voice": voice,
            "appid": appid,
            "calls": calls,
        }

    try:
        data = await ctx.in_thread(read)
    except NotFoundError:
        return not_found(request, viewer, "No such task.")
    return render(
        request,
        viewer,
        "task.html",
        {
            "page": "tasks",
            **data,
            "nation": NATIONS.get(data["task"]["nationcode"]),
            "invalid": json.loads(data["task"]["invalid_entries"]),
            "states": CALL_STATES,
            "more_calls": data["task"]["total"] > TASK_CALLS_SHOWN,
            "notice": request.query_params.get("notice"),
            "canceled": request.query_params.get("canceled"),
            "why": request.query_params.get("why", ""),
        },
    )


@router.get("/tasks/{task_id}/events")
async def task_events(task_id: str, request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    def read() -> dict[str, Any]:
        with ctx.db.read() as conn:
            return progress_view(task_progress(conn, viewer.account_id, task_id))

    try:
        await ctx.in_thread(read)
    except NotFoundError:
        return Response(status_code=404)
    return event_stream(ctx, viewer, "progress", read, last=lambda data: bool(data["done"]))


@router.post("/tasks/{task_id}/cancel")
async def cancel(task_id: str, request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    def write() -> int:
        with ctx.db.write() as conn:
            task = get_task(conn, viewer.account_id, task_id)
            if task["status"] == "finished":
                return -1
            return cancel_task(
                conn, viewer.account_id, task_id, build_record=ctx.build_record, now=ctx.clock.now()
            )

    try:
        canceled = await ctx.in_thread(write)
    except NotFoundError:
        return not_found(request, viewer, "No such task.")
    if canceled < 0:
        return redirect(f"/tasks/{task_id}", notice="already-finished")
    return redirect(f"/tasks/{task_id}", notice="canceled", canceled=canceled)


async def _pause_or_resume(
    task_id: str, ctx: Ctx, viewer: PostingViewer, request: Request, *, pause: bool
) -> Response:
    try:
        await ctx.in_thread(lambda: change_status(ctx, viewer.account_id, task_id, pause=pause))
    except NotFoundError:
        return not_found(request, viewer, "No such task.")
    except IvrcastError as exc:
        # Already paused, not paused, or ended: the page says which.
        return redirect(f"/tasks/{task_id}", notice="unchanged", why=error_text(exc)[1])
    return redirect(f"/tasks/{task_id}", notice="paused" if pause else "resumed")


@router.post("/tasks/{task_id}/pause")
async def pause(task_id: str, request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    return await _pause_or_resume(task_id, ctx, viewer, request, pause=True)


@router.post("/tasks/{task_id}/resume")
async def resume(task_id: str, request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    return await _pause_or_resume(task_id, ctx, viewer, request, pause=False)


@router.get("/send")
async def send_form(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    if viewer.account is None:
        return operator_refused(request, viewer)
    account = viewer.account

    def read() -> list[Any]:
        with ctx.db.read() as conn:
            return list_voices(conn, account.id)

    voices = await ctx.in_thread(read)
    nations = [n for code, n in NATIONS.items() if account.may_call(code)]
    return render(
        request,
        viewer,
        "send.html",
        {
            "page": "send",
            "voices": voices,
            "nations": nations,
            "limits": ctx.settings.limits,
        },
    )


@router.post("/send")
async def send(request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    """One submission of at most `limits.max_numbers` numbers; the page's script splits
    bigger lists and posts the parts one after another (`Accept: application/json`)."""
    wants_json = "application/json" in request.headers.get("accept", "")
    if viewer.account is None:
        if wants_json:
            return JSONResponse({"ok": False, "error": "the operator sends no broadcasts"}, 403)
        return operator_refused(request, viewer)
    form = await read_form(request)
    fields = {name: str(form.get(name, "")) for name in SEND_FIELDS if form.get(name) is not None}
    fields["voicetype"] = "1"
    fields["userkey"] = "1" if form.get("userkey") else "0"
    fields["record"] = "1" if form.get("record") else "0"
    fields["amd"] = "1" if form.get("amd") else "0"
    if fields["amd"] == "0":
        fields.pop("amdaction", None)
    try:
        answer = await play_voice.play_voice(for_account(ctx, viewer), fields, client_ip(request))
    except IvrcastError as exc:
        status, message = error_text(exc)
        if wants_json:
            return JSONResponse(
                {"ok": False, "error": message, "code": classify(exc).code}, status_code=status
            )
        return render(
            request,
            viewer,
            "send_error.html",
            {"page": "send", "error": message},
            status_code=status,
        )
    url = f"{PREFIX}/tasks/{answer['taskid']}"
    if wants_json:
        return JSONResponse({"ok": True, "url": url, **answer})
    return redirect(f"/tasks/{answer['taskid']}", notice="sent")
