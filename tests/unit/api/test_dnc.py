"""Do-not-call lists: the services, REST, PlayVoice leaving listed numbers out, and the
claim ending a number listed after it was queued `suppressed` (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any
from zoneinfo import ZoneInfo

from api_service import Service
from sqlalchemy import select

from ivrcast.callbacks.record import build_call_record
from ivrcast.store import dnc, transitions
from ivrcast.store.tables import call_records, calls, tasks

PLAY = "App.Sip_Call.PlayVoice"
BASIC = {"Authorization": "Basic " + base64.b64encode(b"alice:secret-key").decode()}
BUILD = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))


async def play(service: Service, numbers: str, **extra: Any) -> dict[str, Any]:
    body = await service.as_alice(
        PLAY, nationcode="id", destnumber=numbers, voicetype=1, voicefile="welcome", **extra
    )
    assert body["code"] == 200, body
    data: dict[str, Any] = body["data"]
    return data


def queued_numbers(service: Service, task_id: str) -> list[str]:
    with service.db.read() as conn:
        return list(
            conn.execute(
                select(calls.c.number).where(calls.c.task_id == task_id).order_by(calls.c.id)
            ).scalars()
        )


async def test_numbers_are_listed_in_e164_whatever_their_form(service: Service) -> None:
    added = await service.as_alice(
        "App.Sip_Dnc.Add", nationcode="id", numbers="081234567890，+62 812-3456-7891, 12ab"
    )
    assert added["code"] == 200, added
    assert (added["data"]["added"], added["data"]["invalidcount"]) == (2, 1)
    again = await service.as_alice("App.Sip_Dnc.Add", nationcode="id", numbers="6281234567890")
    assert (again["data"]["added"], again["data"]["listed"]) == (0, 1)
    page = await service.as_alice("App.Sip_Dnc.List", limit=1)
    assert page["data"]["total"] == 2
    assert [n["number"] for n in page["data"]["numbers"]] == ["+6281234567890"]
    rest = await service.as_alice("App.Sip_Dnc.List", limit=1, cursor=page["data"]["next"])
    assert [n["number"] for n in rest["data"]["numbers"]] == ["+6281234567891"]
    removed = await service.as_alice("App.Sip_Dnc.Remove", nationcode="id", numbers="081234567891")
    assert removed["data"]["removed"] == 1
    left = await service.as_alice("App.Sip_Dnc.List")
    assert [n["number"] for n in left["data"]["numbers"]] == ["+6281234567890"]
    assert left["data"]["next"] is None


async def test_playvoice_does_not_queue_listed_numbers(service: Service) -> None:
    await service.as_alice("App.Sip_Dnc.Add", nationcode="id", numbers="081234567890")
    with service.db.write() as conn:
        dnc.add_numbers(conn, dnc.GLOBAL, ["+6281234567892"], now=service.clock.now())
    data = await play(
        service, "+6281234567890,081234567891,081234567892,081234567893", requestid="r-1"
    )
    assert (data["accepted"], data["suppressed"]) == (2, 2)
    assert queued_numbers(service, data["taskid"]) == ["+6281234567891", "+6281234567893"]
    with service.db.read() as conn:
        assert conn.execute(select(tasks.c.total, tasks.c.suppressed)).one() == (2, 2)
    replayed = await play(service, "081234567890", requestid="r-1")
    assert (replayed["replayed"], replayed["accepted"], replayed["suppressed"]) == (True, 2, 2)


async def test_another_account_s_list_does_not_apply(service: Service) -> None:
    bob = service.add_account("bob", countries=["id"])
    with service.db.write() as conn:
        dnc.add_numbers(conn, bob, ["+6281234567890"], now=service.clock.now())
    data = await play(service, "081234567890")
    assert (data["accepted"], data["suppressed"]) == (1, 0)


async def test_a_number_listed_after_it_was_queued_ends_suppressed_when_claimed(
    service: Service,
) -> None:
    data = await play(service, "081234567890,081234567891")
    await service.as_alice("App.Sip_Dnc.Add", nationcode="id", numbers="081234567891")
    now = service.clock.now()
    with service.db.write() as conn:
        claimed = transitions.claim_due_calls(
            conn, task_id=data["taskid"], limit=10, node_id="n", build_record=BUILD, now=now
        )
    assert [call.number for call in claimed] == ["+6281234567890"]
    with service.db.read() as conn:
        rows = conn.execute(select(calls.c.number, calls.c.status).order_by(calls.c.id)).all()
        (payload,) = conn.execute(select(call_records.c.payload)).scalars()
    assert rows == [("+6281234567890", "dialing"), ("+6281234567891", "suppressed")]
    record = json.loads(payload)
    assert (record["status"], record["e164"], record["final"]) == (
        "suppressed",
        "+6281234567891",
        True,
    )
    assert (record["starttime_iso"], record["trunk"], record["disnumber"]) == (None, "", "")


async def test_rest_dnc(sqlite_service: Service) -> None:
    client = sqlite_service.client
    added = await client.post(
        "/v1/dnc", json={"nationcode": "id", "numbers": ["081234567890"]}, headers=BASIC
    )
    listed = await client.get("/v1/dnc", headers=BASIC)
    removed = await client.post(
        "/v1/dnc/remove", json={"nationcode": "id", "numbers": "+6281234567890"}, headers=BASIC
    )
    bad = await client.post("/v1/dnc", json={"nationcode": "id", "numbers": ""}, headers=BASIC)
    assert (added.status_code, added.json()["added"]) == (200, 1)
    assert [n["number"] for n in listed.json()["numbers"]] == ["+6281234567890"]
    assert removed.json()["removed"] == 1
    assert bad.status_code == 400
    assert bad.json()["msg"].startswith("numbers: ")
