"""What a client migrating from the vendor noticed (issue 16), each through the HTTP API."""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
from typing import Any
from zoneinfo import ZoneInfo

from api_service import Service
from sqlalchemy import select

from ivrcast.callbacks.record import build_call_record
from ivrcast.store.tables import call_records, calls, tasks
from ivrcast.store.transitions import expire_queued_calls

PLAY = "App.Sip_Call.PlayVoice"
BASIC = {"Authorization": "Basic " + base64.b64encode(b"alice:secret-key").decode()}
BUILD_RECORD = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))
CDRS_DAY = {
    "appid": "alice",
    "accesskey": "secret-key",
    "starttime": "2026-11-26 00:00:00",
    "endtime": "2026-11-26 23:59:59",
}


async def submit(service: Service, destnumber: str, **extra: Any) -> dict[str, Any]:
    body = await service.as_alice(
        PLAY, nationcode="id", destnumber=destnumber, voicetype=1, voicefile="welcome", **extra
    )
    assert body["code"] == 200, body
    data: dict[str, Any] = body["data"]
    return data


async def cdrs(service: Service, **fields: str) -> dict[str, Any]:
    response = await service.client.post("/api/cdrs", data={**CDRS_DAY, **fields})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# 1. Record ids.


async def test_records_carry_one_id_in_the_callback_cdrs_and_get_bill(service: Service) -> None:
    task = await submit(service, "081234500001,081234500002")
    await service.as_alice("App.Sip_Call.CancelTask", taskid=task["taskid"])
    with service.db.read() as conn:
        pushed = {
            p["uuid"]: p["id"]
            for p in map(json.loads, conn.execute(select(call_records.c.payload)).scalars())
        }
    paged = {row["uuid"]: row["id"] for row in (await cdrs(service))["data"]["data"]}
    bill = await service.as_alice("App.Sip_Cdr.GetBill", syncflag=3)
    pulled = {record["uuid"]: record["id"] for record in bill["data"]["list"]}
    assert len(pushed) == 2
    assert all(isinstance(value, int) and value > 0 for value in pushed.values())
    assert len(set(pushed.values())) == 2
    assert paged == pushed == pulled


# 2. `ret` beside `code` for the vendor's other services.


async def test_services_other_than_play_voice_answer_ret_beside_code(
    sqlite_service: Service,
) -> None:
    task = await submit(sqlite_service, "081234500003")
    login = await sqlite_service.yunhu("App.Sip_Auth.Login", appid="alice", accesskey="secret-key")
    answers = {
        "login": login,
        "bill": await sqlite_service.as_alice("App.Sip_Cdr.GetBill"),
        "voices": await sqlite_service.as_alice("App.Sip_Voice.List"),
        "status": await sqlite_service.as_alice("App.Sip_Call.TaskStatus", taskid=task["taskid"]),
        "cancel": await sqlite_service.as_alice("App.Sip_Call.CancelTask", taskid=task["taskid"]),
        "upload": await sqlite_service.as_alice("App.Sip_Voice.Upload", name="x"),
        "refused": await sqlite_service.yunhu("App.Sip_Auth.Login", appid="alice", accesskey="no"),
        "missing": await sqlite_service.as_alice("App.Sip_Call.TaskStatus", taskid="nope"),
    }
    codes = {name: (body["code"], body.get("ret")) for name, body in answers.items()}
    assert codes == {
        "login": (200, 200),
        "bill": (200, 200),
        "voices": (200, 200),
        "status": (200, 200),
        "cancel": (200, 200),
        "upload": (400, 400),
        "refused": (601, 601),
        "missing": (200, 200),
    }
    # PlayVoice keeps the seed's envelope exactly, and /api/cdrs its code 1.
    play = await sqlite_service.as_alice(
        PLAY, nationcode="id", destnumber="081234500004", voicetype=1, voicefile="welcome"
    )
    assert "ret" not in play
    paged = await cdrs(sqlite_service)
    assert (paged["code"], "ret" in paged) == (1, False)


# 4. The number as the customer wrote it.


async def test_records_keep_the_submitted_number_and_every_filter_takes_either_form(
    service: Service,
) -> None:
    task = await submit(service, "0812-3450-0004，+62 812 3450 0005")
    await service.as_alice("App.Sip_Call.CancelTask", taskid=task["taskid"])
    rows = (await cdrs(service))["data"]["data"]
    assert sorted((r["destnumber"], r["callnumber"], r["e164"]) for r in rows) == [
        ("+6281234500005", "+6281234500005", "+6281234500005"),
        ("081234500004", "081234500004", "+6281234500004"),
    ]
    for written in ("081234500004", "0812-3450-0004", "6281234500004", "+6281234500004"):
        found = (await cdrs(service, callnumber=written))["data"]["data"]
        assert [r["e164"] for r in found] == ["+6281234500004"], written
        listed = await service.client.get("/v1/calls", params={"number": written}, headers=BASIC)
        assert [c["number"] for c in listed.json()["calls"]] == ["+6281234500004"], written
        export = await service.client.get(
            "/v1/calls.csv", params={"number": written}, headers=BASIC
        )
        exported = list(csv.DictReader(io.StringIO(export.text)))
        assert [(r["number"], r["submitted_number"]) for r in exported] == [
            ("+6281234500004", "081234500004")
        ], written
    assert (await cdrs(service, callnumber="081234500009"))["data"]["total"] == 0


async def test_a_batch_stores_each_number_as_submitted(service: Service) -> None:
    task = await submit(service, "081234500006,6281234500007,006281234500008,081234500006")
    assert (task["accepted"], task["duplicates"]) == (3, 1)
    with service.db.read() as conn:
        rows = conn.execute(
            select(calls.c.number, calls.c.submitted_number).where(
                calls.c.task_id == task["taskid"]
            )
        ).all()
    assert sorted(rows) == [
        ("+6281234500006", "081234500006"),
        ("+6281234500007", "6281234500007"),
        # The `00` international prefix, refused by phonenumbers for Indonesia.
        ("+6281234500008", "006281234500008"),
    ]


# 5. Names and edges.


async def test_a_voice_is_found_by_its_file_name(sqlite_service: Service) -> None:
    alice = sqlite_service.add_account("bob", countries=["id"])
    sqlite_service.add_voice(alice, name="promo_voice")
    body = await sqlite_service.yunhu(
        PLAY,
        appid="bob",
        accesskey="secret-key",
        nationcode="id",
        destnumber="081234500010",
        voicetype=1,
        voicefile="promo_voice.mp3",
    )
    assert body["code"] == 200, body
    assert body["data"]["accepted"] == 1
    missing = await sqlite_service.yunhu(
        PLAY,
        appid="bob",
        accesskey="secret-key",
        nationcode="id",
        destnumber="081234500010",
        voicetype=1,
        voicefile="promo_voice.txt",
    )
    assert missing["data"]["errors"]["code"] == 1029


async def test_a_trailing_slash_answers_like_the_path_without(sqlite_service: Service) -> None:
    form = {"service": "App.Sip_Voice.List", "appid": "alice", "accesskey": "secret-key"}
    plain = await sqlite_service.client.post("/api/yunhu", data=form)
    slashed = await sqlite_service.client.post("/api/yunhu/", data=form)
    assert slashed.status_code == 200
    assert slashed.json()["data"]["voices"] == plain.json()["data"]["voices"]
    paged = await sqlite_service.client.post("/api/cdrs/", data=CDRS_DAY)
    assert paged.json()["code"] == 1


async def test_another_method_gets_the_envelope(sqlite_service: Service) -> None:
    for path in ("/api/yunhu", "/api/yunhu/", "/api/cdrs"):
        response = await sqlite_service.client.get(path, params={"service": "App.Sip_Voice.List"})
        assert response.status_code == 200
        body = response.json()
        assert (body["code"], body["data"]) == (400, {}), path
        assert body["msg"].startswith("method: GET is not served"), path


async def test_a_nation_the_account_may_not_call_is_not_licensed(sqlite_service: Service) -> None:
    body = await sqlite_service.as_alice(
        PLAY, nationcode="ph", destnumber="09171234567", voicetype=1, voicefile="welcome"
    )
    assert (body["code"], body["data"]) == (603, {})
    assert body["msg"] == "nationcode: nation 'ph' is not licensed for this account"


async def test_messages_end_without_a_full_stop(sqlite_service: Service) -> None:
    # These messages default to their class's docstring, which ends with a full stop.
    refused = await sqlite_service.yunhu("App.Sip_Auth.Login", appid="alice", accesskey="no")
    token = await sqlite_service.yunhu("App.Sip_Voice.List", token="not-a-token")
    for body in (refused, token):
        assert body["msg"], body
        assert not body["msg"].endswith("."), body


# 6. Times in records of calls never placed.


async def test_calls_never_placed_keep_the_vendors_time_types(service: Service) -> None:
    expiring = await submit(service, "081234500012")
    canceled = await submit(service, "081234500013")
    service.clock.advance(90)
    with service.db.write() as conn:
        expire_queued_calls(
            conn, [expiring["taskid"]], build_record=BUILD_RECORD, now=service.clock.now()
        )
    await service.as_alice("App.Sip_Call.CancelTask", taskid=canceled["taskid"])
    bill = await service.as_alice("App.Sip_Cdr.GetBill", syncflag=3)
    final = "2026-11-26 03:01:30"  # when each reached its final state, in UTC
    seen = {
        record["status"]: (
            record["starttime"],
            record["endtime"],
            record["answertime"],
            record["duration"],
            record["billsec"],
            record["starttime_iso"],
            record["finishtime_iso"],
        )
        for record in bill["data"]["list"]
    }
    never_placed = (final, final, "", 0, 0, None, "2026-11-26T03:01:30.000Z")
    assert seen == {"expired": never_placed, "canceled": never_placed}


# The invalid list kept and echoed (issue 13, item 9).


async def test_a_huge_invalid_destnumber_is_neither_stored_nor_echoed_whole(
    sqlite_service: Service,
) -> None:
    garbage = "9" * 1_000_000
    many = ",".join(f"1{i:03d}" for i in range(300))
    body = await sqlite_service.as_alice(
        PLAY,
        nationcode="id",
        destnumber=f"{garbage},{many},081234500011",
        voicetype=1,
        voicefile="welcome",
        requestid="huge-1",
    )
    data = body["data"]
    assert (data["accepted"], data["invalidcount"]) == (1, 301)
    assert len(data["invalid"]) == 100
    assert data["invalid"][0] == {"number": "9" * 32, "reason": "too long"}
    with sqlite_service.db.read() as conn:
        stored = conn.execute(select(tasks.c.invalid_entries, tasks.c.invalid)).one()
    assert len(stored.invalid_entries) < 10_000
    assert stored.invalid == 301
    # A retried request is answered from what was kept.
    again = await sqlite_service.as_alice(
        PLAY,
        nationcode="id",
        destnumber="081234500011",
        voicetype=1,
        voicefile="welcome",
        requestid="huge-1",
    )
    assert again["data"]["replayed"] is True
    assert (again["data"]["invalidcount"], again["data"]["invalid"]) == (301, data["invalid"])
    # Every number invalid: the 1021 answer is capped the same way.
    refused = await sqlite_service.as_alice(
        PLAY, nationcode="id", destnumber=garbage, voicetype=1, voicefile="welcome"
    )
    assert refused["data"]["errors"]["code"] == 1021
    assert refused["data"]["invalid"] == [{"number": "9" * 32, "reason": "too long"}]
    assert refused["data"]["invalidcount"] == 1
