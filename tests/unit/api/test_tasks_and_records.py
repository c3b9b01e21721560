"""TaskStatus, CancelTask, tokens, and pulling records back (GetBill, /api/cdrs)."""

from __future__ import annotations

import functools
import json
from typing import Any
from zoneinfo import ZoneInfo

from api_service import Service
from sqlalchemy import select

from ivrcast.callbacks.record import build_call_record
from ivrcast.store.accounts import update_account
from ivrcast.store.tables import call_records, outbox
from ivrcast.store.transitions import expire_queued_calls, finish_ended_tasks

PLAY = "App.Sip_Call.PlayVoice"
NUMBERS = ",".join(f"08123456{i:04d}" for i in range(12))
BUILD_RECORD = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))


async def submit(service: Service, **extra: Any) -> str:
    body = await service.as_alice(
        PLAY,
        nationcode="id",
        destnumber=NUMBERS,
        voicetype=1,
        voicefile="welcome",
        customuuid="c-1",
        **extra,
    )
    task_id: str = body["data"]["taskid"]
    return task_id


async def test_task_status_counts_calls_by_state(service: Service) -> None:
    task_id = await submit(service)
    body = await service.as_alice("App.Sip_Call.TaskStatus", taskid=task_id)
    data = body["data"]
    assert (data["taskid"], data["status"], data["total"], data["finished"]) == (
        task_id,
        "active",
        12,
        0,
    )
    assert data["counts"]["queued"] == 12
    assert set(data["counts"]) >= {"queued", "dialing", "completed", "canceled", "expired"}


async def test_cancel_ends_queued_calls_with_a_record_and_a_delivery_each(
    service: Service,
) -> None:
    with service.db.write() as conn:
        update_account(conn, "alice", callback_url="https://hooks.example.com/ivr")
    task_id = await submit(service)
    body = await service.as_alice("App.Sip_Call.CancelTask", taskid=task_id)
    assert body["data"]["canceled"] == 12
    status = (await service.as_alice("App.Sip_Call.TaskStatus", taskid=task_id))["data"]
    assert (status["status"], status["counts"]["canceled"]) == ("canceled", 12)
    with service.db.read() as conn:
        payloads = [json.loads(p) for p in conn.execute(select(call_records.c.payload)).scalars()]
        deliveries = conn.execute(select(outbox.c.url, outbox.c.status)).all()
    assert len(payloads) == 12
    assert {p["status"] for p in payloads} == {"canceled"}
    assert {p["taskid"] for p in payloads} == {task_id}
    assert {p["customuuid"] for p in payloads} == {"c-1"}
    # Never dialed: both vendor times are the cancellation's moment, nothing was billed.
    canceled_at = "2026-11-26 03:00:00"
    assert {
        (p["callmethod"], p["type"], p["starttime"], p["endtime"], p["answertime"], p["billsec"])
        for p in payloads
    } == {(6, "callout", canceled_at, canceled_at, "", 0)}
    assert len({p["uuid"] for p in payloads}) == 12
    assert deliveries == [("https://hooks.example.com/ivr", "pending")] * 12
    # Canceling again changes nothing and writes no second record.
    again = await service.as_alice("App.Sip_Call.CancelTask", taskid=task_id)
    assert again["data"]["canceled"] == 0
    with service.db.read() as conn:
        assert len(conn.execute(select(call_records.c.id)).all()) == 12


async def test_unknown_tasks_and_finished_tasks(sqlite_service: Service) -> None:
    missing = await sqlite_service.as_alice("App.Sip_Call.TaskStatus", taskid="nope")
    assert missing["data"]["status"] == 1
    assert missing["data"]["errors"]["code"] == 1024
    task_id = await submit(sqlite_service)
    # The calling window closes on every call: the dialer's own transitions end the task.
    with sqlite_service.db.write() as conn:
        now = sqlite_service.clock.now()
        expire_queued_calls(conn, [task_id], build_record=BUILD_RECORD, now=now)
        finish_ended_tasks(conn, now=now)
    ended = await sqlite_service.as_alice("App.Sip_Call.CancelTask", taskid=task_id)
    assert ended["data"]["errors"]["code"] == 1028
    required = await sqlite_service.as_alice("App.Sip_Call.TaskStatus")
    assert (required["code"], required["msg"]) == (400, "taskid: is required")


async def test_login_token_works_for_twelve_hours(sqlite_service: Service) -> None:
    login = await sqlite_service.yunhu("App.Sip_Auth.Login", appid="alice", accesskey="secret-key")
    token = login["data"]["token"]
    assert login["data"]["expiretime"] - login["data"]["reqtime"] == 12 * 3600
    task_id = await submit(sqlite_service)
    body = await sqlite_service.yunhu("App.Sip_Call.TaskStatus", token=token, taskid=task_id)
    assert body["data"]["total"] == 12
    sqlite_service.clock.advance(12 * 3600)
    expired = await sqlite_service.yunhu("App.Sip_Call.TaskStatus", token=token, taskid=task_id)
    assert expired["code"] == 600
    wrong = await sqlite_service.yunhu("App.Sip_Auth.Login", appid="alice", accesskey="x")
    assert wrong["code"] == 601


async def test_get_bill_syncflag(service: Service) -> None:
    task_id = await submit(service)
    await service.as_alice("App.Sip_Call.CancelTask", taskid=task_id)
    first = await service.as_alice("App.Sip_Cdr.GetBill", limit=10)
    assert first["data"]["total"] == 10
    second = await service.as_alice("App.Sip_Cdr.GetBill")
    assert second["data"]["total"] == 2
    assert (await service.as_alice("App.Sip_Cdr.GetBill", syncflag=1))["data"]["total"] == 0
    fetched = await service.as_alice("App.Sip_Cdr.GetBill", syncflag=2)
    uuids = {r["uuid"] for r in first["data"]["list"] + second["data"]["list"]}
    assert {r["uuid"] for r in fetched["data"]["list"]} == uuids
    bad = await service.as_alice("App.Sip_Cdr.GetBill", syncflag=4)
    assert bad["msg"].startswith("syncflag: ")


async def test_cdrs_pages_records_in_the_vendors_shape(sqlite_service: Service) -> None:
    task_id = await submit(sqlite_service)
    await sqlite_service.as_alice("App.Sip_Call.CancelTask", taskid=task_id)
    form = {
        "appid": "alice",
        "accesskey": "secret-key",
        "starttime": "2026-11-26 00:00:00",
        "endtime": "2026-11-26 23:59:59",
        "per_page": "5",
        "page": "3",
    }
    body = (await sqlite_service.client.post("/api/cdrs", data=form)).json()
    assert body["code"] == 1
    assert (body["data"]["page"], body["data"]["per_page"], body["data"]["total"]) == (3, 5, 12)
    rows = body["data"]["data"]
    assert len(rows) == 2
    assert {row["context"] for row in rows} == {"callout"}
    # As submitted (`08123456...`), the E.164 form beside it.
    assert all(row["callnumber"].startswith("08123456") for row in rows)
    assert all(row["e164"] == "+62" + row["callnumber"][1:] for row in rows)
    one = rows[0]["callnumber"]
    filtered = await sqlite_service.client.post(
        "/api/cdrs", data={**form, "page": "1", "callnumber": one}
    )
    assert filtered.json()["data"]["total"] == 1
    bad = await sqlite_service.client.post("/api/cdrs", data={**form, "starttime": "yesterday"})
    assert bad.json()["code"] == 400
    assert bad.json()["msg"].startswith("starttime: ")
