"""Parameters that reach the database differently on each engine are refused before it:
NUL characters, integers beyond 64 bits, instants beyond what both engines store. Each
answer is a 4xx naming the parameter, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import base64
import re

import pytest
from api_service import Service

BASIC = {"Authorization": "Basic " + base64.b64encode(b"alice:secret-key").decode()}
NUL = "\x00"


async def test_a_nul_character_is_refused_in_every_form_of_parameter(service: Service) -> None:
    form = await service.as_alice(
        "App.Sip_Call.PlayVoice",
        nationcode="id",
        destnumber="081234567890",
        voicetype=1,
        voicefile="welcome",
        customuuid=f"a{NUL}b",
    )
    assert form == {"code": 400, "msg": "customuuid: must not contain a NUL character", "data": {}}
    appid = await service.yunhu("App.Sip_Voice.List", appid=f"al{NUL}ice", accesskey="k")
    assert appid["msg"] == "appid: must not contain a NUL character"
    client = service.client
    body = await client.post(
        "/v1/tasks",
        headers=BASIC,
        json={"nationcode": "id", "destnumber": "1", "voicetype": 1, "voicefile": f"w{NUL}"},
    )
    assert (body.status_code, body.json()["msg"]) == (
        400,
        "voicefile: must not contain a NUL character",
    )
    token = await client.post("/v1/token", json={"appid": f"a{NUL}", "accesskey": "k"})
    assert (token.status_code, token.json()["msg"]) == (
        400,
        "appid: must not contain a NUL character",
    )
    query = await client.get("/v1/calls", headers=BASIC, params={"number": f"0{NUL}1"})
    assert (query.status_code, query.json()["msg"]) == (
        400,
        "number: must not contain a NUL character",
    )
    for path in ("/v1/calls/a%00b", "/v1/tasks/a%00b", "/v1/tasks/a%00b/cancel"):
        method = "POST" if path.endswith("cancel") else "GET"
        answer = await client.request(method, path, headers=BASIC)
        assert (answer.status_code, answer.json()["msg"]) == (
            400,
            "path: must not contain a NUL character",
        ), path


async def test_a_cursor_beyond_64_bits_is_a_parameter_error(service: Service) -> None:
    answer = await service.client.get("/v1/calls", headers=BASIC, params={"cursor": "9" * 25})
    assert answer.status_code == 400
    assert answer.json()["msg"].startswith("cursor: ")
    largest = await service.client.get(
        "/v1/calls", headers=BASIC, params={"cursor": str(2**63 - 1)}
    )
    assert largest.status_code == 200


@pytest.mark.parametrize(
    "instant",
    [
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-14:00",
        "9999-12-31T23:59:59Z",
        "1969-12-31T23:59:59Z",
    ],
)
@pytest.mark.parametrize("name", ["since", "until"])
async def test_instants_out_of_bounds_are_parameter_errors(
    service: Service, name: str, instant: str
) -> None:
    for path in ("/v1/calls", "/v1/calls.csv"):
        answer = await service.client.get(path, headers=BASIC, params={name: instant})
        assert answer.status_code == 400, path
        assert answer.json()["msg"] == (
            f"{name}: must be from 1970-01-01 to 9999-01-01, got {instant!r}"
        )


async def test_instants_within_bounds_filter_on_both_engines(service: Service) -> None:
    await service.as_alice(
        "App.Sip_Call.PlayVoice",
        nationcode="id",
        destnumber="081234567890",
        voicetype=1,
        voicefile="welcome",
    )
    wide = {"since": "1970-01-01T00:00:00Z", "until": "9999-01-01T00:00:00+00:00"}
    listed = await service.client.get("/v1/calls", headers=BASIC, params=wide)
    assert len(listed.json()["calls"]) == 1
    exported = await service.client.get("/v1/calls.csv", headers=BASIC, params=wide)
    assert len(exported.text.strip().splitlines()) == 2
    later = await service.client.get(
        "/v1/calls", headers=BASIC, params={"since": "2026-11-26T12:00:00+08:01"}
    )
    assert later.json()["calls"] == []


async def test_console_forms_refuse_nul_characters(service: Service) -> None:
    page = await service.client.get("/console/signin")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    answer = await service.client.post(
        "/console/signin", data={"csrf": found.group(1), "appid": f"a{NUL}b", "accesskey": "k"}
    )
    assert answer.status_code == 400
    assert answer.json()["msg"] == "appid: must not contain a NUL character"


async def test_a_hundred_thousand_numbers_are_a_parameter_error(service: Service) -> None:
    numbers = ",".join(f"0812{i:08d}" for i in range(100_000))
    answer = await service.as_alice(
        "App.Sip_Call.PlayVoice",
        nationcode="id",
        destnumber=numbers,
        voicetype=1,
        voicefile="welcome",
    )
    assert answer["code"] == 400
    assert answer["msg"].startswith("destnumber: ")


@pytest.mark.parametrize("name", ["starttime", "endtime"])
async def test_record_query_times_out_of_bounds_are_parameter_errors(
    service: Service, name: str
) -> None:
    times = {"starttime": "2026-11-01 00:00:00", "endtime": "2026-12-01 00:00:00"}
    for extreme in ("0001-01-01 00:00:00", "9999-12-31 23:59:59"):
        fields = {**times, name: extreme, "appid": "alice", "accesskey": "secret-key"}
        response = await service.client.post("/api/cdrs", data=fields)
        assert response.json() == {
            "code": 400,
            "msg": f"{name}: must be from 1970-01-01 to 9999-01-01, got {extreme!r}",
            "data": {},
        }
