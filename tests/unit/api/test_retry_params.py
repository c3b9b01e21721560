"""PlayVoice's retry parameters (`retries`, `retryinterval`, `retryon`), in the compat
interface and REST, and the rounds TaskStatus shows."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from api_service import Service
from sqlalchemy import select

from ivrcast.store.tables import tasks

PLAY = "App.Sip_Call.PlayVoice"
BASIC = {"Authorization": "Basic " + base64.b64encode(b"alice:secret-key").decode()}
GOOD: dict[str, Any] = {
    "nationcode": "id",
    "destnumber": "081234567890,081234567891",
    "voicetype": 1,
    "voicefile": "welcome",
}


def task_row(service: Service, task_id: str) -> Any:
    with service.db.read() as conn:
        return conn.execute(select(tasks).where(tasks.c.id == task_id)).one()


async def test_without_retry_parameters_a_number_has_one_round(sqlite_service: Service) -> None:
    body = await sqlite_service.as_alice(PLAY, **GOOD)
    task = task_row(sqlite_service, body["data"]["taskid"])
    assert (task.retries, task.retry_interval, task.retry_on) == (0, 30, "busy,no_answer")
    status = await sqlite_service.as_alice("App.Sip_Call.TaskStatus", taskid=body["data"]["taskid"])
    assert status["data"]["retries"] == 0
    assert status["data"]["rounds"] == {"1": 2}


async def test_retry_parameters_are_stored(service: Service) -> None:
    body = await service.as_alice(
        PLAY, **GOOD, retries=3, retryinterval=5, retryon="rejected， BUSY"
    )
    task = task_row(service, body["data"]["taskid"])
    assert (task.retries, task.retry_interval, task.retry_on) == (3, 5, "busy,rejected")


async def test_rest_takes_the_same_retry_parameters(sqlite_service: Service) -> None:
    response = await sqlite_service.client.post(
        "/v1/tasks",
        json={**GOOD, "retries": 2, "retryinterval": 60, "retryon": ["no_answer", "failed"]},
        headers=BASIC,
    )
    assert response.status_code == 201, response.text
    task = task_row(sqlite_service, response.json()["taskid"])
    assert (task.retries, task.retry_interval, task.retry_on) == (2, 60, "no_answer,failed")


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"retries": 6}, "retries"),
        ({"retries": -1}, "retries"),
        ({"retries": "two"}, "retries"),
        ({"retryinterval": 0}, "retryinterval"),
        ({"retryinterval": 1441}, "retryinterval"),
        ({"retryon": "busy,completed"}, "retryon"),
        ({"retryon": "interrupted"}, "retryon"),
        ({"retryon": " , "}, "retryon"),
    ],
)
async def test_bad_retry_parameters_are_refused_naming_them(
    sqlite_service: Service, changes: dict[str, Any], param: str
) -> None:
    body = await sqlite_service.as_alice(PLAY, **{**GOOD, **changes})
    assert body["code"] == 400, body
    assert body["msg"].startswith(f"{param}: "), body
    with sqlite_service.db.read() as conn:
        assert conn.execute(select(tasks)).all() == []


async def test_the_account_s_default_applies_when_retries_is_absent(service: Service) -> None:
    service.add_voice(service.add_account("carol", countries=["id"], default_retries=2))
    fields = {**GOOD, "appid": "carol", "accesskey": "secret-key"}
    by_default = await service.yunhu(PLAY, **fields)
    explicit = await service.yunhu(PLAY, **fields, retries=0)
    assert task_row(service, by_default["data"]["taskid"]).retries == 2
    assert task_row(service, explicit["data"]["taskid"]).retries == 0
