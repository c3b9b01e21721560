"""`/v1/calls`: filters, cursors, CSV streaming, one call's story."""

from __future__ import annotations

import base64
import csv
import io

from api_service import Service

from ivrcast.store.calls import EXPORT_COLUMNS

BASIC = {"Authorization": "Basic " + base64.b64encode(b"alice:secret-key").decode()}


async def submit(service: Service, count: int, first: int = 0) -> str:
    numbers = ",".join(f"08123456{i:04d}" for i in range(first, first + count))
    body = await service.as_alice(
        "App.Sip_Call.PlayVoice",
        nationcode="id",
        destnumber=numbers,
        voicetype=1,
        voicefile="welcome",
    )
    task_id: str = body["data"]["taskid"]
    return task_id


async def test_cursor_pages_walk_every_call_once(service: Service) -> None:
    await submit(service, 25)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await service.client.get("/v1/calls", headers=BASIC, params=params)).json()
        seen += [call["uuid"] for call in page["calls"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 25


async def test_filters(sqlite_service: Service) -> None:
    first = await submit(sqlite_service, 5)
    second = await submit(sqlite_service, 3, first=100)
    await sqlite_service.as_alice("App.Sip_Call.CancelTask", taskid=second)
    client = sqlite_service.client

    async def count(**params: str) -> int:
        response = await client.get("/v1/calls", headers=BASIC, params=params)
        assert response.status_code == 200, response.text
        return len(response.json()["calls"])

    assert await count(task=first) == 5
    assert await count(status="canceled") == 3
    assert await count(number="6281234560002") == 1
    assert await count(since="2026-11-26T00:00:00Z", until="2026-11-27T00:00:00Z") == 8
    assert await count(since="2026-11-27T00:00:00+00:00") == 0
    bad = await client.get("/v1/calls", headers=BASIC, params={"status": "lost"})
    assert (bad.status_code, bad.json()["msg"][:8]) == (400, "status: ")


async def test_csv_export_streams_every_matching_call(sqlite_service: Service) -> None:
    await submit(sqlite_service, 40)
    sqlite_service.add_account("mallory", accesskey="k")
    response = await sqlite_service.client.get("/v1/calls.csv", headers=BASIC)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert len(rows) == 41
    other = {"Authorization": "Basic " + base64.b64encode(b"mallory:k").decode()}
    assert (
        len((await sqlite_service.client.get("/v1/calls.csv", headers=other)).text.splitlines())
        == 1
    )


async def test_one_calls_story_has_its_record(sqlite_service: Service) -> None:
    task_id = await submit(sqlite_service, 1)
    await sqlite_service.as_alice("App.Sip_Call.CancelTask", taskid=task_id)
    listed = (await sqlite_service.client.get("/v1/calls", headers=BASIC)).json()["calls"]
    uuid = listed[0]["uuid"]
    story = (await sqlite_service.client.get(f"/v1/calls/{uuid}", headers=BASIC)).json()
    assert story["call"]["status"] == "canceled"
    assert story["record"]["uuid"] == uuid
    assert story["delivery"] is None  # alice has no callback URL
    missing = await sqlite_service.client.get("/v1/calls/nope", headers=BASIC)
    assert missing.status_code == 404
