"""`App.Sip_Call.TaskStatus`, `CancelTask`, `PauseTask` and `ResumeTask`.

A paused task claims no call (a later round included) on any dialer node; calls in
progress finish. Its calling window and `todayonly` still apply: at the end of a
todayonly=1 day its queued calls expire, paused or not. Cancel works on a paused task.
"""

from __future__ import annotations

from typing import Any

from ivrcast.api import params
from ivrcast.api.context import ApiContext
from ivrcast.api.errors import TaskEnded, TaskNotPaused, TaskPaused
from ivrcast.store.tasks import (
    TaskProgress,
    cancel_task,
    get_task,
    set_task_status,
    task_progress,
)


def describe(progress: TaskProgress) -> dict[str, Any]:
    return {
        "taskid": progress.id,
        "status": progress.status,
        "nationcode": progress.nationcode,
        "total": progress.total,
        "finished": progress.finished,
        "counts": progress.counts,
        "retries": progress.retries,
        "rounds": {str(number): calls for number, calls in progress.rounds.items()},
        "created_at": progress.created_at.isoformat(),
        "ended_at": progress.ended_at.isoformat() if progress.ended_at else None,
    }


async def task_status(
    ctx: ApiContext, form: params.Params, client_ip: str | None
) -> dict[str, Any]:
    def read() -> TaskProgress:
        account = ctx.account_from(form, client_ip)
        task_id = params.required(form, "taskid")
        with ctx.db.read() as conn:
            return task_progress(conn, account.id, task_id)

    return {"desc": "Task status", **describe(await ctx.in_thread(read))}


async def cancel(ctx: ApiContext, form: params.Params, client_ip: str | None) -> dict[str, Any]:
    def write() -> int:
        account = ctx.account_from(form, client_ip)
        task_id = params.required(form, "taskid")
        with ctx.db.write() as conn:
            if get_task(conn, account.id, task_id)["status"] == "finished":
                raise TaskEnded(f"taskid: task {task_id!r} has finished")
            return cancel_task(
                conn, account.id, task_id, build_record=ctx.build_record, now=ctx.clock.now()
            )

    canceled = await ctx.in_thread(write)
    return {"desc": "Task canceled", "taskid": form["taskid"].strip(), "canceled": canceled}


def change_status(ctx: ApiContext, account_id: int | None, task_id: str, *, pause: bool) -> None:
    """Pause (active -> paused) or resume (paused -> active), or the vendor's code for
    why not: 1027 already paused, 1026 not paused (running), 1028 ended."""
    wanted = ("active", "paused") if pause else ("paused", "active")
    with ctx.db.write() as conn:
        before = set_task_status(
            conn, account_id, task_id, from_status=wanted[0], to_status=wanted[1]
        )
    if before == wanted[0]:
        return
    if before in ("finished", "canceled"):
        raise TaskEnded(f"taskid: task {task_id!r} has {before}")
    if pause:
        raise TaskPaused(f"taskid: task {task_id!r} is paused already")
    raise TaskNotPaused(f"taskid: task {task_id!r} is not paused")


async def pause(ctx: ApiContext, form: params.Params, client_ip: str | None) -> dict[str, Any]:
    def write() -> None:
        account = ctx.account_from(form, client_ip)
        change_status(ctx, account.id, params.required(form, "taskid"), pause=True)

    await ctx.in_thread(write)
    return {"desc": "Task paused", "taskid": form["taskid"].strip(), "status": "paused"}


async def resume(ctx: ApiContext, form: params.Params, client_ip: str | None) -> dict[str, Any]:
    def write() -> None:
        account = ctx.account_from(form, client_ip)
        change_status(ctx, account.id, params.required(form, "taskid"), pause=False)

    await ctx.in_thread(write)
    return {"desc": "Task resumed", "taskid": form["taskid"].strip(), "status": "active"}
