"""`App.Sip_Call.PlayVoice`: every parameter's rules, and what a good batch stores."""

from __future__ import annotations

from typing import Any

import pytest
from api_service import Service
from sqlalchemy import select

from ivrcast.store.tables import calls, tasks

PLAY = "App.Sip_Call.PlayVoice"
GOOD: dict[str, Any] = {
    "nationcode": "id",
    "destnumber": "081234567890",
    "voicetype": 1,
    "voicefile": "welcome",
}


async def play(service: Service, **changes: Any) -> dict[str, Any]:
    fields = {**GOOD, **changes}
    return await service.as_alice(PLAY, **{k: v for k, v in fields.items() if v is not None})


async def test_a_batch_is_queued_with_duplicates_and_invalid_numbers_reported(
    service: Service,
) -> None:
    body = await play(
        service, destnumber=" 081234567890，0812-3456-7891 ,+6281234567890, 133,,12ab "
    )
    assert body["code"] == 200
    assert body["msg"] == "successful request"
    data = body["data"]
    assert data["desc"] == "Play command sent successfully"
    assert data["accepted"] == 2
    assert data["duplicates"] == 1
    assert [entry["number"] for entry in data["invalid"]] == ["133", "12ab"]
    assert all(entry["reason"] for entry in data["invalid"])
    assert isinstance(data["reqtime"], int)
    assert isinstance(data["rsptime"], int)
    with service.db.read() as conn:
        numbers = conn.execute(
            select(calls.c.number, calls.c.status).where(calls.c.task_id == data["taskid"])
        ).all()
        task = conn.execute(select(tasks).where(tasks.c.id == data["taskid"])).one()
    assert sorted(numbers) == [("+6281234567890", "queued"), ("+6281234567891", "queued")]
    assert (task.total, task.duplicates, task.invalid) == (2, 1, 2)


async def test_customer_data_is_stored_byte_for_byte(service: Service) -> None:
    chengshudu = "  order #42 / 订单 \t"
    body = await play(service, chengshudu=chengshudu, customuuid="ü-1 ")
    with service.db.read() as conn:
        task = conn.execute(select(tasks).where(tasks.c.id == body["data"]["taskid"])).one()
    assert (task.chengshudu, task.customuuid) == (chengshudu, "ü-1 ")


async def test_defaults_of_the_optional_parameters(sqlite_service: Service) -> None:
    body = await play(sqlite_service)
    with sqlite_service.db.read() as conn:
        task = conn.execute(select(tasks).where(tasks.c.id == body["data"]["taskid"])).one()
    assert (task.userkey, task.todayonly, task.waittime, task.disnumber) == (False, 1, 30, None)
    # The demo voice lasts one second: the call may last it plus a margin, not more.
    assert 1 <= task.conntime <= 3
    assert str(task.local_day) == "2026-11-26"


async def test_a_batch_of_only_invalid_numbers_is_refused_as_illegal_and_makes_no_task(
    sqlite_service: Service,
) -> None:
    body = await play(sqlite_service, destnumber="133，134，135，135")
    # The vendor's form for a valid request that cannot be carried out: 1021 illegal number.
    assert body["code"] == 200
    data = body["data"]
    assert (data["status"], data["errors"]["code"]) == (1, 1021)
    assert data["errors"]["codemsg"].startswith("destnumber: ")
    assert "taskid" not in data
    assert data["accepted"] == 0
    assert [entry["number"] for entry in data["invalid"]] == ["133", "134", "135", "135"]
    assert data["invalidcount"] == 4
    with sqlite_service.db.read() as conn:
        assert conn.execute(select(tasks)).all() == []


BAD_INPUTS = [
    pytest.param({"nationcode": None}, "nationcode", id="nationcode missing"),
    pytest.param({"nationcode": "xx"}, "nationcode", id="nationcode unknown"),
    pytest.param({"voicetype": "abcdefg"}, "voicetype", id="voicetype not a number"),
    pytest.param({"voicetype": 3}, "voicetype", id="voicetype out of range"),
    pytest.param({"voicetype": None}, "voicetype", id="voicetype missing"),
    pytest.param({"voicefile": None}, "voicefile", id="voicefile missing"),
    pytest.param({"voicetype": 2, "voicefile": "ftp://x/a.wav"}, "voicefile", id="voice not http"),
    pytest.param(
        {"voicetype": 2, "voicefile": "http://127.0.0.1:9/a.wav"}, "voicefile", id="ssrf loopback"
    ),
    pytest.param(
        {"voicetype": 2, "voicefile": "http://169.254.169.254/a.wav"},
        "voicefile",
        id="ssrf metadata",
    ),
    pytest.param({"userkey": 2}, "userkey", id="userkey out of range"),
    pytest.param({"todayonly": 0}, "todayonly", id="todayonly out of range"),
    pytest.param({"todayonly": "yes"}, "todayonly", id="todayonly not a number"),
    pytest.param({"waittime": 0}, "waittime", id="waittime zero"),
    pytest.param({"waittime": 121}, "waittime", id="waittime too long"),
    pytest.param({"waittime": "1.5"}, "waittime", id="waittime not an integer"),
    pytest.param({"conntime": 3601}, "conntime", id="conntime too long"),
    pytest.param({"conntime": -1}, "conntime", id="conntime negative"),
    pytest.param({"chengshudu": "x" * 256}, "chengshudu", id="chengshudu too long"),
    pytest.param({"customuuid": "é" * 128}, "customuuid", id="customuuid too long in bytes"),
    pytest.param({"disnumber": "12 34"}, "disnumber", id="disnumber with a space"),
    pytest.param({"destnumber": None}, "destnumber", id="destnumber missing"),
    pytest.param({"destnumber": " ，, "}, "destnumber", id="destnumber empty"),
    pytest.param(
        {"destnumber": ",".join(f"0812{i:08d}" for i in range(5001))},
        "destnumber",
        id="more than 5000 numbers",
    ),
    pytest.param({"accesskey": None}, "accesskey", id="accesskey missing"),
    pytest.param({"appid": None}, "appid", id="appid missing"),
]


@pytest.mark.parametrize(("changes", "param"), BAD_INPUTS)
async def test_bad_input_is_refused_naming_the_parameter(
    sqlite_service: Service, changes: dict[str, Any], param: str
) -> None:
    fields = {"appid": "alice", "accesskey": "secret-key", **GOOD, **changes}
    body = await sqlite_service.yunhu(PLAY, **{k: v for k, v in fields.items() if v is not None})
    assert body["code"] == 400, body
    assert body["msg"].startswith(f"{param}: "), body
    assert body["data"] == {}
    with sqlite_service.db.read() as conn:
        assert conn.execute(select(tasks)).all() == []


async def test_an_unknown_voice_is_a_missing_file(sqlite_service: Service) -> None:
    body = await play(sqlite_service, voicefile="nope")
    assert body["code"] == 200
    assert body["data"]["status"] == 1
    assert body["data"]["errors"]["code"] == 1029
    assert body["data"]["errors"]["codemsg"].startswith("voicefile: ")


async def test_disnumber_must_be_one_the_account_may_use(sqlite_service: Service) -> None:
    sqlite_service.add_account("bob", callerids=["622150001000"])
    sqlite_service.add_voice(2)
    fields = {**GOOD, "appid": "bob", "accesskey": "secret-key"}
    refused = await sqlite_service.yunhu(PLAY, **fields, disnumber="622150009999")
    assert refused["code"] == 400
    assert refused["msg"].startswith("disnumber: ")
    accepted = await sqlite_service.yunhu(PLAY, **fields, disnumber="+622150001000")
    assert accepted["code"] == 200


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ({"appid": "alice", "accesskey": "wrong"}, 601),
        ({"appid": "nobody", "accesskey": "secret-key"}, 601),
    ],
)
async def test_bad_credentials(
    sqlite_service: Service, credentials: dict[str, str], code: int
) -> None:
    body = await sqlite_service.yunhu(PLAY, **GOOD, **credentials)
    assert body["code"] == code
    assert body["data"] == {}


async def test_unknown_and_missing_service(sqlite_service: Service) -> None:
    body = await sqlite_service.as_alice("App.Sip_Call.Nothing")
    assert (body["code"], body["msg"]) == (400, "service: unknown service 'App.Sip_Call.Nothing'")
    response = await sqlite_service.client.post("/api/yunhu", data={"appid": "alice"})
    assert response.json()["msg"] == "service: is required"


async def test_url_encoded_forms_and_the_root_path_are_accepted(sqlite_service: Service) -> None:
    fields = {"service": PLAY, "appid": "alice", "accesskey": "secret-key", **GOOD}
    response = await sqlite_service.client.post("/", data={k: str(v) for k, v in fields.items()})
    assert response.json()["code"] == 200


async def test_a_retried_request_finds_its_task_instead_of_dialing_again(
    service: Service,
) -> None:
    first = await play(service, destnumber="081234567890,133", requestid="batch-7:part-1")
    again = await play(service, destnumber="081234567890,133", requestid="batch-7:part-1")
    assert first["data"]["replayed"] is False
    assert again["data"]["replayed"] is True
    for key in ("taskid", "accepted", "duplicates", "invalid"):
        assert again["data"][key] == first["data"][key]
    other = await play(service, requestid="batch-7:part-2")
    assert other["data"]["taskid"] != first["data"]["taskid"]
    with service.db.read() as conn:
        assert len(conn.execute(select(tasks.c.id)).all()) == 2
        assert len(conn.execute(select(calls.c.id)).all()) == 2
    bad = await play(service, requestid="no spaces")
    assert bad["msg"].startswith("requestid: ")


def _numbers_in_chunks() -> tuple[list[str], list[str]]:
    """1500 items over three of the chunks the numbers are written in, and the E.164
    numbers they come to: other shapes among them, invalid ones, and duplicates both
    within a chunk and of a number an earlier chunk held."""
    items: list[str] = []
    expected: list[str] = []
    for i in range(1500):
        e164 = f"+6281234{i:06d}"
        if i % 97 == 5:
            items.append(f"133{i}")  # invalid
        elif i % 89 == 7:
            items.append(items[i // 3])  # an earlier item again, possibly chunks before
        elif i % 3 == 0:
            items.append(f"0812-34{i:06d}")  # a shape the one pattern leaves to the rest
            expected.append(e164)
        else:
            items.append(e164 if i % 2 else "0" + e164[3:])
            expected.append(e164)
    return items, expected


async def test_a_batch_decided_while_it_is_written_stores_what_the_parser_decides(
    service: Service,
) -> None:
    items, expected = _numbers_in_chunks()
    body = await play(service, destnumber=",".join(items))
    data = body["data"]
    invalid = [item for item in items if item.startswith("133")]
    assert data["accepted"] == len(expected)
    assert data["invalidcount"] == len(invalid)
    assert data["duplicates"] == len(items) - len(expected) - len(invalid)
    with service.db.read() as conn:
        rows = conn.execute(
            select(calls.c.uuid, calls.c.number).where(calls.c.task_id == data["taskid"])
        ).all()
        task = conn.execute(select(tasks).where(tasks.c.id == data["taskid"])).one()
    # In submission order (the ids are time-ordered), each number once.
    assert [number for _, number in sorted(rows)] == expected
    assert (task.total, task.duplicates, task.invalid, task.status) == (
        len(expected),
        data["duplicates"],
        len(invalid),
        "active",
    )


async def test_a_long_batch_of_only_invalid_numbers_leaves_nothing_behind(
    service: Service,
) -> None:
    """Decided while being written, the refusal comes after the task row and the COPY
    began: the transaction must take both back."""
    body = await play(service, destnumber=",".join(f"133{i}" for i in range(1500)))
    assert body["data"]["errors"]["code"] == 1021
    with service.db.read() as conn:
        assert conn.execute(select(tasks)).all() == []
        assert conn.execute(select(calls)).all() == []


@pytest.mark.parametrize(
    ("destnumber", "param"),
    [("133,134", "destnumber"), ("081234567890", "voicefile")],
)
@pytest.mark.parametrize("requestid", [None, "r-1"])
async def test_without_the_voice_a_batch_without_callable_numbers_is_still_refused_as_such(
    service: Service, destnumber: str, param: str, requestid: str | None
) -> None:
    body = await play(service, destnumber=destnumber, voicefile="absent", requestid=requestid)
    assert body["data"]["errors"]["codemsg"].startswith(f"{param}: ")


async def test_a_clean_long_batch_is_counted_in_its_task(service: Service) -> None:
    """Every item accepted: the task row keeps the counts it was first written with."""
    items = [f"0812{i:08d}" for i in range(1200)]
    data = (await play(service, destnumber=",".join(items)))["data"]
    with service.db.read() as conn:
        task = conn.execute(select(tasks).where(tasks.c.id == data["taskid"])).one()
        written = conn.execute(select(calls.c.id).where(calls.c.task_id == task.id)).all()
    assert (data["accepted"], data["duplicates"], data["invalidcount"]) == (1200, 0, 0)
    assert (task.total, task.duplicates, task.invalid, task.suppressed) == (1200, 0, 0, 0)
    assert (task.status, task.invalid_entries, len(written)) == ("active", "[]", 1200)
