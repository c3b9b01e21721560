"""Recordings over HTTP: `record=1` is taken and checked, a recorded call's record has a
signed `recordurl` that opens its WAV without credentials (and nothing else), and the
account's credentials open its own recordings only."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from api_service import Service, SettingsFactory, start_service
from sqlalchemy import select

from ivrcast.recordings import recording_path
from ivrcast.rtp.recording import wav_header
from ivrcast.store.tables import call_records, tasks
from ivrcast.store.transitions import CallEnd, claim_due_calls, finish_calls

PUBLIC = "https://ivr.example.com/base"
BASIC = {"Authorization": "Basic " + base64.b64encode(b"alice:secret-key").decode()}
WAV = wav_header(4) + b"\x01\x00\xff\xff"


@pytest.fixture
async def service(make_settings: SettingsFactory, database_url: str) -> AsyncIterator[Service]:
    settings = make_settings(
        database_url, server={"public_url": PUBLIC + "/"}, recordings={"link_days": 2}
    )
    async for running in start_service(settings):
        yield running


async def submit(service: Service, **extra: str) -> dict[str, object]:
    return await service.as_alice(
        "App.Sip_Call.PlayVoice",
        nationcode="id",
        destnumber="081234560001",
        voicetype=1,
        voicefile="welcome",
        **extra,
    )


def finish_recorded(service: Service, task_id: str) -> tuple[str, dict[str, object]]:
    """The dialer's part: claim the call, write its recording, end it recorded."""
    now = service.clock.now()
    build_record = service.app.state.ctx.build_record
    with service.db.write() as conn:
        (call,) = claim_due_calls(
            conn, task_id=task_id, limit=1, node_id="n1", build_record=build_record, now=now
        )
        folder = service.settings.recordings_dir
        folder.mkdir(parents=True, exist_ok=True)
        recording_path(folder, call.uuid).write_bytes(WAV)
        end = CallEnd(
            status="completed",
            ended_at=now + timedelta(seconds=5),
            invited_at=now,
            answered_at=now + timedelta(seconds=1),
            recorded=True,
        )
        finish_calls(conn, {call.id: end}, build_record=build_record, now=now)
        payload = conn.execute(
            select(call_records.c.payload).where(call_records.c.uuid == call.uuid)
        ).scalar_one()
    return call.uuid, json.loads(payload)


def local(url: str) -> str:
    """The link's path and query, for the in-process client."""
    parts = urlsplit(url)
    return parts.path.removeprefix("/base") + "?" + parts.query


async def test_record_is_a_checked_choice_kept_with_the_task(service: Service) -> None:
    bad = await submit(service, record="2")
    assert bad["code"] == 400
    assert str(bad["msg"]).startswith("record: ")
    body = await submit(service, record="1")
    plain = await submit(service)
    with service.db.read() as conn:
        kept = dict(conn.execute(select(tasks.c.id, tasks.c.record)).all())
    data = body["data"]
    assert isinstance(data, dict)
    assert isinstance(plain["data"], dict)
    assert kept == {data["taskid"]: True, plain["data"]["taskid"]: False}


async def test_rest_v1_takes_record_too(service: Service) -> None:
    response = await service.client.post(
        "/v1/tasks",
        headers=BASIC,
        json={
            "nationcode": "id",
            "destnumber": ["081234560001"],
            "voicetype": 1,
            "voicefile": "welcome",
            "record": 1,
        },
    )
    assert response.status_code == 201, response.text
    with service.db.read() as conn:
        assert conn.execute(select(tasks.c.record)).scalar_one() is True


def dialer_records(service: Service, task_id: str) -> bool:
    """Whether the dialer records the task's calls (it reads the task's flag with it)."""
    with service.db.read() as conn:
        flag: bool = conn.execute(select(tasks.c.record).where(tasks.c.id == task_id)).scalar_one()
    return flag


async def test_the_account_s_default_record_applies_when_record_is_absent(
    service: Service,
) -> None:
    service.add_voice(service.add_account("carol", countries=["id"], default_record=True))
    fields = {
        "appid": "carol", "accesskey": "secret-key", "nationcode": "id",
        "destnumber": "081234560001", "voicetype": 1, "voicefile": "welcome",
    }  # fmt: skip
    by_default = await service.yunhu("App.Sip_Call.PlayVoice", **fields)
    turned_off = await service.yunhu("App.Sip_Call.PlayVoice", **fields, record=0)
    assert by_default["code"] == turned_off["code"] == 200, (by_default, turned_off)
    assert dialer_records(service, by_default["data"]["taskid"]) is True
    assert dialer_records(service, turned_off["data"]["taskid"]) is False
    carol = base64.b64encode(b"carol:secret-key").decode()
    rest = {key: value for key, value in fields.items() if key not in ("appid", "accesskey")}
    response = await service.client.post(
        "/v1/tasks", headers={"Authorization": "Basic " + carol}, json=rest
    )
    assert response.status_code == 201, response.text
    assert dialer_records(service, response.json()["taskid"]) is True
    # An account without the default still records only on record=1.
    plain = await submit(service)
    data = plain["data"]
    assert isinstance(data, dict)
    assert dialer_records(service, data["taskid"]) is False


async def test_signed_link_opens_the_recording_and_nothing_else(service: Service) -> None:
    body = await submit(service, record="1")
    data = body["data"]
    assert isinstance(data, dict)
    uuid, record = finish_recorded(service, data["taskid"])
    url = str(record["recordurl"])
    assert url.startswith(f"{PUBLIC}/v1/recordings/{uuid}?")
    client = service.client

    opened = await client.get(local(url))
    assert opened.status_code == 200
    assert opened.headers["content-type"] == "audio/wav"
    assert opened.content == WAV

    query = parse_qs(urlsplit(url).query)
    sig, expires = query["sig"][0], query["expires"][0]
    altered = [
        f"/v1/recordings/{uuid}?expires={expires}&sig={sig[:-1]}{'0' if sig[-1] != '0' else '1'}",
        f"/v1/recordings/{uuid}?expires={int(expires) + 3600}&sig={sig}",
        f"/v1/recordings/{uuid}?expires={expires}",
    ]
    for path in altered:
        refused = await client.get(path)
        assert (refused.status_code, refused.json()["code"]) == (403, 601), path
        assert refused.json()["msg"].startswith("sig: ")

    # Valid for `link_days` after the call ended, and not a second more.
    service.clock.advance(2 * 86400 + 4)
    assert (await client.get(local(url))).status_code == 200
    service.clock.advance(2)
    assert (await client.get(local(url))).status_code == 403


async def test_credentials_open_the_accounts_own_recordings_only(service: Service) -> None:
    body = await submit(service, record="1")
    data = body["data"]
    assert isinstance(data, dict)
    uuid, _ = finish_recorded(service, data["taskid"])
    client = service.client
    mine = await client.get(f"/v1/recordings/{uuid}", headers=BASIC)
    assert (mine.status_code, mine.content) == (200, WAV)

    service.add_account("mallory", accesskey="k")
    other = {"Authorization": "Basic " + base64.b64encode(b"mallory:k").decode()}
    theirs = await client.get(f"/v1/recordings/{uuid}", headers=other)
    assert theirs.status_code == 404
    assert (await client.get(f"/v1/recordings/{uuid}")).status_code == 401
    assert (await client.get("/v1/recordings/..%2Fsecret.key", headers=BASIC)).status_code == 404


async def test_unrecorded_calls_have_no_link(service: Service) -> None:
    body = await submit(service)
    data = body["data"]
    assert isinstance(data, dict)
    now = service.clock.now()
    build_record = service.app.state.ctx.build_record
    with service.db.write() as conn:
        (call,) = claim_due_calls(
            conn, task_id=data["taskid"], limit=1, node_id="n", build_record=build_record, now=now
        )
        end = CallEnd(status="completed", invited_at=now, answered_at=now)
        finish_calls(conn, {call.id: end}, build_record=build_record, now=now)
        payload = json.loads(conn.execute(select(call_records.c.payload)).scalar_one())
    assert payload["recordurl"] == ""
    assert (
        await service.client.get(f"/v1/recordings/{call.uuid}", headers=BASIC)
    ).status_code == 404


def test_recordings_folder_defaults_into_the_data_dir(make_settings: SettingsFactory) -> None:
    settings = make_settings("sqlite://")
    assert settings.recordings_dir == Path(settings.data_dir) / "recordings"
