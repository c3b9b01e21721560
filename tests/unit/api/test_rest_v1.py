"""REST `/v1`: the same operations, HTTP statuses, OpenAPI."""

from __future__ import annotations

import base64

from api_service import Service

from ivrcast.demo_account import demo_tone

BASIC = {"Authorization": "Basic " + base64.b64encode(b"alice:secret-key").decode()}


async def test_submit_follow_and_cancel_a_task(sqlite_service: Service) -> None:
    client = sqlite_service.client
    created = await client.post(
        "/v1/tasks",
        headers=BASIC,
        json={
            "nationcode": "id",
            "destnumber": ["081234567890", "081234567891", "133"],
            "voicetype": 1,
            "voicefile": "welcome",
        },
    )
    assert created.status_code == 201
    assert created.json()["accepted"] == 2
    task_id = created.json()["taskid"]
    progress = await client.get(f"/v1/tasks/{task_id}", headers=BASIC)
    assert progress.json()["counts"]["queued"] == 2
    canceled = await client.post(f"/v1/tasks/{task_id}/cancel", headers=BASIC)
    assert canceled.json()["canceled"] == 2
    records = await client.get("/v1/records", headers=BASIC, params={"syncflag": 3})
    assert len(records.json()["list"]) == 2


async def test_tokens_and_voices(sqlite_service: Service) -> None:
    client = sqlite_service.client
    token = await client.post("/v1/token", json={"appid": "alice", "accesskey": "secret-key"})
    bearer = {"Authorization": f"Bearer {token.json()['token']}"}
    uploaded = await client.post(
        "/v1/voices", headers=bearer, data={"name": "hello"}, files={"file": ("h.wav", demo_tone())}
    )
    assert uploaded.status_code == 201
    names = [v["name"] for v in (await client.get("/v1/voices", headers=bearer)).json()["voices"]]
    assert names == ["hello", "welcome"]


async def test_errors_carry_status_code_and_the_parameter(sqlite_service: Service) -> None:
    client = sqlite_service.client
    unauthenticated = await client.get("/v1/voices")
    assert (unauthenticated.status_code, unauthenticated.json()["code"]) == (401, 601)
    wrong = await client.get(
        "/v1/voices", headers={"Authorization": "Basic " + base64.b64encode(b"alice:x").decode()}
    )
    assert wrong.status_code == 401
    missing = await client.get("/v1/tasks/nope", headers=BASIC)
    assert (missing.status_code, missing.json()["code"]) == (404, 1024)
    invalid = await client.post(
        "/v1/tasks",
        headers=BASIC,
        json={"nationcode": "id", "destnumber": "081234567890", "voicetype": 9, "voicefile": "w"},
    )
    assert invalid.status_code == 400
    assert invalid.json()["msg"].startswith("voicetype: ")
    unknown_field = await client.post(
        "/v1/tasks",
        headers=BASIC,
        json={"nationcode": "id", "destnumber": "1", "voicetype": 1, "voicefile": "w", "x": 1},
    )
    assert unknown_field.status_code == 400
    assert unknown_field.json()["msg"].startswith("x: ")


async def test_openapi_describes_the_rest_interface(sqlite_service: Service) -> None:
    schema = (await sqlite_service.client.get("/v1/openapi.json")).json()
    assert {"/v1/tasks", "/v1/tasks/{taskid}", "/v1/voices", "/v1/token"} <= set(schema["paths"])
    assert "/api/yunhu" not in schema["paths"]
    docs = await sqlite_service.client.get("/docs")
    assert docs.status_code == 200
    assert "/v1/openapi.json" in docs.text


async def test_openapi_declares_the_error_answers_and_the_csv(sqlite_service: Service) -> None:
    schema = (await sqlite_service.client.get("/v1/openapi.json")).json()
    export = schema["paths"]["/v1/calls.csv"]["get"]["responses"]
    assert list(export["200"]["content"]) == ["text/csv"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert {"400", "408", "413"} <= set(answers), (method, path)
            for status, answer in answers.items():
                if status.startswith("4"):
                    body = answer["content"]["application/json"]["schema"]
                    assert body["required"] == ["code", "msg"], (method, path, status)
    assert "HTTPValidationError" not in str(schema)
