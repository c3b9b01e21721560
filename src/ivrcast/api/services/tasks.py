"""`App.Sip_Call.TaskStatus` and `App.Sip_Call.CancelTask`."""

from __future__ import annotations

from typing import Any

from ivrcast.api import params
from ivrcast.api.context import ApiContext
from ivrcast.api.errors import TaskEnded
from ivrcast.store.tasks import TaskProgress, cancel_task, get_task, task_progress


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
