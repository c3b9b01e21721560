"""docs/api.md lists, per service, the reply keys and every code it can answer; here one
request per (service, code) is sent through the app, and the codes produced must be
exactly the documented ones, in replies of exactly the documented keys."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from api_service import Service, SettingsFactory, start_service
from sqlalchemy import text

from ivrcast.callbacks.record import build_call_record
from ivrcast.demo_account import demo_tone
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head
from ivrcast.store.transitions import expire_queued_calls, finish_ended_tasks

DOC = Path(__file__).parents[3] / "docs" / "api.md"
CDRS = "POST /api/cdrs"
PLAY = "App.Sip_Call.PlayVoice"
ALICE = {"appid": "alice", "accesskey": "secret-key"}
DAY = {"starttime": "2026-11-26 00:00:00", "endtime": "2026-11-26 23:59:59"}
BUILD_RECORD = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))
# Room for three voices of a second (8,000 bytes each of PCMU and PCMA): `welcome`, then
# `greeting` and `third` fit, and `fourth` meets the quota (1102).
VOICE_QUOTA = 48_000


def documented() -> dict[str, tuple[set[str], set[int]]]:
    """service -> (reply keys, codes), from the table between the service-codes markers."""
    table = DOC.read_text().split("<!-- service-codes:start -->")[1]
    table = table.split("<!-- service-codes:end -->")[0]
    found = {}
    for line in table.strip().splitlines()[2:]:
        service, keys, codes = (cell.strip() for cell in line.strip().strip("|").split("|"))
        found[service.strip("`")] = (
            set(re.findall(r"`(\w+)`", keys)),
            {int(code) for code in codes.split(",")},
        )
    return found


class Caller:
    """Sends a service's request with given credentials and parameters, as form-data."""

    def __init__(self, service: Service, file: bytes) -> None:
        self.service = service
        self.file = file

    async def __call__(self, name: str, /, **fields: str) -> dict[str, Any]:
        if name == CDRS:
            response = await self.service.client.post("/api/cdrs", data=fields)
        else:
            files = {"file": ("voice.wav", self.file)} if "name" in fields else {"_": (None, "")}
            response = await self.service.client.post(
                "/api/yunhu", data={"service": name, **fields}, files=files
            )
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body


def produced_code(name: str, body: dict[str, Any]) -> int:
    data = body.get("data") or {}
    if body["code"] == 200 and data.get("status") == 1:
        code: int = data["errors"]["code"]
        return code
    code = body["code"]
    return code


@pytest.fixture
async def small_quota_service(
    make_settings: SettingsFactory, tmp_path: Path
) -> AsyncIterator[Service]:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db = Database(url)
    upgrade_to_head(db)
    db.dispose()
    settings = make_settings(
        url,
        limits={"max_voice_storage_bytes": VOICE_QUOTA},
        # One wrong accesskey per service: more than the default throttle lets through.
        security={"max_failed_sign_ins": 100},
    )
    async for running in start_service(settings):
        yield running


async def test_every_documented_code_is_produced_and_no_other(
    small_quota_service: Service,
) -> None:
    svc = small_quota_service
    call = Caller(svc, demo_tone(seconds=1.0))
    svc.add_account("expired", expires_at=svc.clock.now() - timedelta(days=1))
    svc.add_account("fenced", allowed_ips=["203.0.113.0/24"])
    active = (
        await call(
            PLAY,
            **ALICE,
            nationcode="id",
            destnumber="081234567890",
            voicetype="1",
            voicefile="welcome",
        )
    )["data"]["taskid"]
    ended = (
        await call(
            PLAY,
            **ALICE,
            nationcode="id",
            destnumber="081234567891",
            voicetype="1",
            voicefile="welcome",
        )
    )["data"]["taskid"]
    paused = (
        await call(
            PLAY,
            **ALICE,
            nationcode="id",
            destnumber="081234567893",
            voicetype="1",
            voicefile="welcome",
        )
    )["data"]["taskid"]
    with svc.db.write() as conn:
        expire_queued_calls(conn, [ended], build_record=BUILD_RECORD, now=svc.clock.now())
        finish_ended_tasks(conn, now=svc.clock.now())

    # Each service's parameters for a request that succeeds.
    good: dict[str, dict[str, str]] = {
        PLAY: {
            "nationcode": "id",
            "destnumber": "081234567892",
            "voicetype": "1",
            "voicefile": "welcome",
        },
        "App.Sip_Call.TaskStatus": {"taskid": active},
        # PauseTask first pauses `paused`; ResumeTask then resumes it (services run in
        # this order, each with every set of credentials before its special requests).
        "App.Sip_Call.PauseTask": {"taskid": paused},
        "App.Sip_Call.ResumeTask": {"taskid": paused},
        "App.Sip_Call.CancelTask": {"taskid": active},
        "App.Sip_Voice.Upload": {"name": "greeting"},
        "App.Sip_Voice.List": {},
        "App.Sip_Auth.Login": {},
        "App.Sip_Cdr.GetBill": {},
        "App.Sip_Dnc.Add": {"nationcode": "id", "numbers": "081234567899"},
        "App.Sip_Dnc.Remove": {"nationcode": "id", "numbers": "081234567899"},
        "App.Sip_Dnc.List": {},
        CDRS: DAY,
    }
    # What only some services can answer: service -> requests (credentials are alice's).
    special: dict[str, list[dict[str, str]]] = {
        PLAY: [
            {**good[PLAY], "nationcode": "ph", "destnumber": "09171234567"},  # 603
            {**good[PLAY], "destnumber": "133，134，135，135"},  # 1021
            {**good[PLAY], "voicefile": "promo.mp3"},  # 1029
        ],
        "App.Sip_Call.TaskStatus": [{"taskid": "nope"}],  # 1024
        "App.Sip_Call.CancelTask": [{"taskid": "nope"}, {"taskid": ended}],  # 1024, 1028
        # 1024, 1028; pausing `paused` again (the good request paused it): 1027.
        "App.Sip_Call.PauseTask": [{"taskid": "nope"}, {"taskid": ended}, {"taskid": paused}],
        # 1024, 1028; resuming `active`, which runs: 1026.
        "App.Sip_Call.ResumeTask": [{"taskid": "nope"}, {"taskid": ended}, {"taskid": active}],
        "App.Sip_Voice.Upload": [
            {"name": "welcome"},  # 1101
            {"name": "third"},
            {"name": "fourth"},  # 1102
        ],
    }
    credentials: list[dict[str, str]] = [
        ALICE,  # 200 (1)
        {"accesskey": "secret-key"},  # 400: appid is required
        {"appid": "alice", "accesskey": "wrong"},  # 601
        {"appid": "expired", "accesskey": "secret-key"},  # 602
        {"appid": "fenced", "accesskey": "secret-key"},  # 604
        {"token": "not-a-token"},  # 600 (Login takes no token: 400)
    ]
    replies: list[tuple[str, dict[str, Any]]] = []
    for name, fields in good.items():
        for creds in credentials:
            replies.append((name, await call(name, **creds, **fields)))
        for fields_ in special.get(name, []):
            replies.append((name, await call(name, **ALICE, **fields_)))
    # A server error: the table every request authenticates against is gone.
    with svc.db.write() as conn:
        conn.execute(text("ALTER TABLE accounts RENAME TO accounts_gone"))
    for name, fields in good.items():
        replies.append((name, await call(name, **ALICE, **fields)))

    docs = documented()
    produced: dict[str, set[int]] = {}
    for name, body in replies:
        produced.setdefault(name, set()).add(produced_code(name, body))
        assert set(body) == docs[name][0], (name, body)
        if "ret" in body:
            assert body["ret"] == body["code"], (name, body)
        messages = [body["msg"]] + ([body["data"]["desc"]] if "desc" in body["data"] else [])
        for message in messages:
            assert message, (name, body)
            assert not message.endswith("."), (name, body)
        if body["code"] == 400:
            assert re.match(r"\w+: ", body["msg"]), (name, body)
    assert produced == {name: codes for name, (_, codes) in docs.items()}


def test_the_table_names_every_service_the_dispatcher_serves() -> None:
    from ivrcast.api.yunhu import SERVICES, UPLOAD_SERVICE

    assert set(documented()) == {*SERVICES, UPLOAD_SERVICE, CDRS}
