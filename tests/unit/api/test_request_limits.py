"""Request bodies are bounded as they stream, on every route, before authentication.

The bodies here are chunked (no `Content-Length`), as an attacker would send them, and
the test counts how much of each the app pulled: a limit checked only on the declared
length would read them whole.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from api_service import Service, SettingsFactory, start_service

from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head

CHUNK = 16 * 1024
MAX_BODY = 64 * 1024
MAX_UPLOAD = 256 * 1024


class Stream:
    """A chunked body of `total` bytes that counts what has been pulled from it."""

    def __init__(self, total: int, *, head: bytes = b"", stall_after: int | None = None) -> None:
        self.total = total
        self.head = head
        self.stall_after = stall_after
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.head:
            self.pulled += len(self.head)
            yield self.head
        while self.pulled < self.total:
            if self.stall_after is not None and self.pulled >= self.stall_after:
                await asyncio.Event().wait()  # a client that stops sending
            self.pulled += CHUNK
            yield b"x" * CHUNK


@pytest.fixture
async def limited(make_settings: SettingsFactory, tmp_path: Path) -> AsyncIterator[Service]:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db = Database(url)
    upgrade_to_head(db)
    db.dispose()
    settings = make_settings(
        url,
        server={"max_body_bytes": MAX_BODY, "body_timeout_seconds": 0.2},
        limits={"max_upload_bytes": MAX_UPLOAD},
    )
    async for running in start_service(settings):
        yield running


async def test_a_chunked_json_body_is_cut_at_the_limit_and_answered_in_the_envelope(
    limited: Service,
) -> None:
    body = Stream(50 * 1024 * 1024, head=b'{"service": "App.Sip_Call.PlayVoice", "x": "')
    response = await limited.client.post(
        "/api/yunhu", content=body.__aiter__(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "code": 400,
        "msg": f"body: the request is larger than the limit of {MAX_BODY} bytes",
        "data": {},
    }
    assert response.headers["connection"] == "close"
    assert body.pulled <= MAX_BODY + 2 * CHUNK


async def test_a_chunked_multipart_upload_is_cut_at_the_upload_limit(limited: Service) -> None:
    head = b'--b\r\ncontent-disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    body = Stream(50 * 1024 * 1024, head=head)
    response = await limited.client.post(
        "/api/yunhu",
        content=body.__aiter__(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    limit = MAX_UPLOAD + MAX_BODY
    assert response.json()["msg"] == f"body: the request is larger than the limit of {limit} bytes"
    assert limit <= body.pulled <= limit + 2 * CHUNK


async def test_cdrs_and_rest_and_console_refuse_in_their_own_shapes(limited: Service) -> None:
    client = limited.client
    cdrs = await client.post(
        "/api/cdrs", content=Stream(10 * MAX_BODY).__aiter__(), headers={"content-type": "x/y"}
    )
    assert (cdrs.status_code, cdrs.json()["code"]) == (200, 400)
    rest_body = Stream(10 * MAX_BODY)
    rest = await client.post(
        "/v1/tasks", content=rest_body.__aiter__(), headers={"content-type": "application/json"}
    )
    assert rest.status_code == 413
    assert rest.json() == {
        "code": 400,
        "msg": f"body: the request is larger than the limit of {MAX_BODY} bytes",
    }
    assert rest_body.pulled <= MAX_BODY + 2 * CHUNK
    # A JSON task is not an upload: the upload allowance is only for the voice routes.
    voices = await client.post(
        "/v1/voices",
        content=Stream(MAX_UPLOAD).__aiter__(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert voices.status_code != 413
    await client.get("/console/signin")  # a session, so the sign-in form is read
    console = await client.post(
        "/console/signin",
        content=Stream(10 * MAX_BODY).__aiter__(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert console.status_code == 413
    assert console.text.startswith("body: the request is larger")


async def test_a_declared_length_over_the_limit_is_refused_unread(limited: Service) -> None:
    body = json.dumps({"nationcode": "id", "pad": "x" * 2 * MAX_BODY})
    response = await limited.client.post(
        "/v1/tasks", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_a_body_that_stops_arriving_is_answered_408(limited: Service) -> None:
    body = Stream(MAX_BODY, stall_after=CHUNK)
    response = await limited.client.post(
        "/v1/tasks", content=body.__aiter__(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 408
    assert response.json() == {
        "code": 400,
        "msg": "body: the request paused for more than 0.2 seconds",
    }
    vendor = await limited.client.post(
        "/api/yunhu",
        content=Stream(MAX_BODY, stall_after=CHUNK).__aiter__(),
        headers={"content-type": "application/json"},
    )
    assert vendor.json()["msg"] == "body: the request paused for more than 0.2 seconds"


async def test_requests_within_the_limits_pass(limited: Service) -> None:
    answer = await limited.as_alice("App.Sip_Voice.List")
    assert answer["code"] == 200


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--b\r\ncontent-disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + b"--b--\r\n"


async def vendor_post(service: Service, content: bytes, content_type: str) -> httpx.Response:
    response = await service.client.post(
        "/api/yunhu", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 200
    return response


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (
            multipart(
                ("service", None, b"App.Sip_Voice.Upload"),
                ("a", "a.wav", b"1"),
                ("b", "b.wav", b"2"),
            ),
            "multipart/form-data; boundary=b",
            "body: is not an acceptable form: Too many files. Maximum number of files is 1",
        ),
        (
            multipart(*[(f"f{i}", None, b"1") for i in range(100)]),
            "multipart/form-data; boundary=b",
            "body: is not an acceptable form: Too many fields. Maximum number of fields is 64",
        ),
        (
            multipart(("destnumber", None, b"1," * 40_000)),
            "multipart/form-data; boundary=b",
            "body: is not an acceptable form: Part exceeded maximum size of 64KB",
        ),
        (
            b"--other\r\nnot a part",
            "multipart/form-data; boundary=b",
            "body: is not an acceptable form: Invalid multipart data",
        ),
        (
            b"--b\r\n",
            "multipart/form-data",
            "body: is not an acceptable form: Missing boundary in multipart",
        ),
        (
            b"&".join(b"f%d=1" % i for i in range(100)),
            "application/x-www-form-urlencoded",
            "body: is not an acceptable form: Too many fields. Maximum number of fields is 64",
        ),
        (b"[" * 20_000 + b"]" * 20_000, "application/json", "body: is not valid JSON"),
        (
            multipart(("service", None, b"App.Sip_Voice.List"), ("appid", None, b"al\x00ice")),
            "multipart/form-data; boundary=b",
            "appid: must not contain a NUL character",
        ),
    ],
    ids=[
        "two-files",
        "many-fields",
        "large-field",
        "bad-framing",
        "no-boundary",
        "many-urlencoded",
        "deep-json",
        "nul",
    ],
)
async def test_malformed_forms_are_parameter_errors(
    limited: Service, content: bytes, content_type: str, message: str
) -> None:
    response = await vendor_post(limited, content, content_type)
    assert response.json() == {"code": 400, "msg": message, "data": {}}


async def test_rest_answers_unparseable_bodies_in_its_own_shape(limited: Service) -> None:
    deep = b"[" * 20_000 + b"]" * 20_000
    response = await limited.client.post(
        "/v1/tasks", content=deep, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["msg"].startswith("body: ")
