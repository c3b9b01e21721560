"""PauseTask and ResumeTask (compat, REST, console): a paused task claims nothing, its
day still ends it, and cancel works on it."""

from __future__ import annotations

import base64
import functools
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from api_service import Service
from sqlalchemy import select

from ivrcast.callbacks.record import build_call_record
from ivrcast.store import transitions
from ivrcast.store.tables import calls, tasks

PLAY = "App.Sip_Call.PlayVoice"
BASIC = {"Authorization": "Basic " + base64.b64encode(b"alice:secret-key").decode()}
BUILD = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))


async def submit(service: Service, numbers: str = "081234567890,081234567891") -> str:
    body = await service.as_alice(
        PLAY, nationcode="id", destnumber=numbers, voicetype=1, voicefile="welcome"
    )
    task_id: str = body["data"]["taskid"]
    return task_id


def error_code(body: dict[str, Any]) -> int:
    code: int = body["data"]["errors"]["code"]
    return code


async def test_a_paused_task_is_listed_as_paused_and_claims_nothing_until_resumed(
    service: Service,
) -> None:
    task_id = await submit(service)
    paused = await service.as_alice("App.Sip_Call.PauseTask", taskid=task_id)
    assert paused["code"] == 200, paused
    assert paused["data"]["status"] == "paused"
    status = await service.as_alice("App.Sip_Call.TaskStatus", taskid=task_id)
    assert status["data"]["status"] == "paused"
    now = service.clock.now()
    with service.db.read() as conn:
        (due,) = transitions.due_tasks(conn, now=now, count_up_to=100)
    # Listed, for the end of its day, but the dialer claims only `active` tasks.
    assert (due.id, due.status, due.queued) == (task_id, "paused", 2)
    assert (await service.as_alice("App.Sip_Call.PauseTask", taskid=task_id))["data"]["errors"][
        "code"
    ] == 1027
    resumed = await service.as_alice("App.Sip_Call.ResumeTask", taskid=task_id)
    assert resumed["data"]["status"] == "active"
    assert error_code(await service.as_alice("App.Sip_Call.ResumeTask", taskid=task_id)) == 1026


async def test_cancel_works_on_a_paused_task(service: Service) -> None:
    task_id = await submit(service)
    await service.as_alice("App.Sip_Call.PauseTask", taskid=task_id)
    canceled = await service.as_alice("App.Sip_Call.CancelTask", taskid=task_id)
    assert canceled["data"]["canceled"] == 2
    with service.db.read() as conn:
        assert conn.execute(select(tasks.c.status)).scalar_one() == "canceled"
    for service_name in ("App.Sip_Call.PauseTask", "App.Sip_Call.ResumeTask"):
        assert error_code(await service.as_alice(service_name, taskid=task_id)) == 1028


async def test_a_paused_task_s_todayonly_day_still_ends_and_the_task_finishes(
    service: Service,
) -> None:
    task_id = await submit(service)
    await service.as_alice("App.Sip_Call.PauseTask", taskid=task_id)
    later = service.clock.now() + timedelta(days=1)
    with service.db.write() as conn:
        expired = transitions.expire_queued_calls(conn, [task_id], build_record=BUILD, now=later)
        transitions.finish_ended_tasks(conn, now=later)
    assert expired == 2
    with service.db.read() as conn:
        assert conn.execute(select(tasks.c.status)).scalar_one() == "finished"
        assert set(conn.execute(select(calls.c.status)).scalars()) == {"expired"}


async def test_rest_pause_and_resume(sqlite_service: Service) -> None:
    task_id = await submit(sqlite_service)
    client = sqlite_service.client
    paused = await client.post(f"/v1/tasks/{task_id}/pause", headers=BASIC)
    again = await client.post(f"/v1/tasks/{task_id}/pause", headers=BASIC)
    resumed = await client.post(f"/v1/tasks/{task_id}/resume", headers=BASIC)
    missing = await client.post("/v1/tasks/nope/resume", headers=BASIC)
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    assert (again.status_code, again.json()["code"]) == (409, 1027)
    assert (resumed.status_code, resumed.json()["status"]) == (200, "active")
    assert missing.status_code == 404
