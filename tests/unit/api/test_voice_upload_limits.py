"""Hostile voices through every upload path: refused from their headers, decoded in the
transcode pool where they cannot stall other tenants, and bounded by a storage quota."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_service import Service, SettingsFactory, start_service

from gated_transcode import (
    gated_transcode,
    refuse_to_run,
    started_marker,
)
from hostile_audio import EIGHT_CHANNELS_192K
from ivrcast.demo_account import demo_tone
from ivrcast.voices.pool import TranscodePool
from waiting import wait_for

EIGHT_CHANNELS = "file: the audio has 8 channels; at most 2 are accepted"
ONE_SECOND_STORED = 2 * 8000  # PCMU + PCMA bytes of one second
QUOTA = 2 * ONE_SECOND_STORED + ONE_SECOND_STORED // 4


HOSTILE = EIGHT_CHANNELS_192K


async def upload(
    service: Service, data: bytes, *, appid: str = "alice", name: str = "v"
) -> dict[str, Any]:
    form = {"service": "App.Sip_Voice.Upload", "appid": appid, "accesskey": "secret-key"}
    response = await service.client.post(
        "/api/yunhu", data={**form, "name": name}, files={"file": ("v.flac", data)}
    )
    body: dict[str, Any] = response.json()
    return body


async def test_a_hostile_flac_is_refused_naming_the_file(service: Service) -> None:
    body = await upload(service, HOSTILE)
    assert body["code"] == 400
    assert body["msg"] == EIGHT_CHANNELS


async def test_a_hostile_flac_is_refused_on_v1(service: Service) -> None:
    response = await service.client.post(
        "/v1/voices",
        auth=("alice", "secret-key"),
        data={"name": "v"},
        files={"file": ("v.flac", HOSTILE)},
    )
    assert response.status_code == 400
    assert response.json()["msg"] == EIGHT_CHANNELS


@pytest.fixture
def hostile_url() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "audio/flac")
            self.send_header("Content-Length", str(len(HOSTILE)))
            self.end_headers()
            self.wfile.write(HOSTILE)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/voice.flac"
    httpd.shutdown()
    httpd.server_close()


async def test_an_online_voice_goes_through_the_same_checks(
    make_settings: SettingsFactory, database_url: str, hostile_url: str
) -> None:
    settings = make_settings(database_url, security={"allow_private_urls": True})
    async for service in start_service(settings):
        body = await service.as_alice(
            "App.Sip_Call.PlayVoice",
            nationcode="id",
            destnumber="081234567890",
            voicetype=2,
            voicefile=hostile_url,
        )
        assert body["code"] == 400
        assert body["msg"] == "voicefile: the audio has 8 channels; at most 2 are accepted"


@pytest.fixture
async def quota_of_two_and_a_quarter_seconds(
    make_settings: SettingsFactory, database_url: str
) -> AsyncIterator[Service]:
    # alice's `welcome` voice is one second already.
    settings = make_settings(database_url, limits={"max_voice_storage_bytes": QUOTA})
    async for service in start_service(settings):
        yield service


async def test_uploads_past_the_storage_quota_are_refused(
    quota_of_two_and_a_quarter_seconds: Service,
) -> None:
    service = quota_of_two_and_a_quarter_seconds
    assert (await upload(service, demo_tone(seconds=1.0), name="second"))["code"] == 200
    refused = await upload(service, demo_tone(seconds=0.5), name="third")
    assert refused["code"] == 200
    assert refused["data"]["status"] == 1
    assert refused["data"]["errors"]["code"] == 1102
    assert refused["data"]["errors"]["codemsg"] == (
        f"voice storage quota exceeded: {2 * ONE_SECOND_STORED} of {QUOTA} "
        f"bytes are used and this voice needs {ONE_SECOND_STORED // 2} more; "
        "ask the operator for a larger quota"
    )
    listed = await service.as_alice("App.Sip_Voice.List")
    assert [v["name"] for v in listed["data"]["voices"]] == ["second", "welcome"]
    # Another account has its own quota.
    service.add_account("bob")
    assert (await upload(service, demo_tone(seconds=1.0), appid="bob"))["code"] == 200


async def test_a_full_quota_is_refused_before_transcoding(
    make_settings: SettingsFactory, database_url: str
) -> None:
    settings = make_settings(database_url, limits={"max_voice_storage_bytes": ONE_SECOND_STORED})
    service_app = start_service(settings, transcoder=TranscodePool(1, job=refuse_to_run))
    async for service in service_app:
        refused = await upload(service, demo_tone(seconds=0.2))
        assert refused["data"]["errors"]["code"] == 1102, refused
        assert refused["data"]["errors"]["codemsg"] == (
            f"voice storage quota exceeded: {ONE_SECOND_STORED} of {ONE_SECOND_STORED} bytes "
            "are used; ask the operator for a larger quota"
        )


async def test_a_busy_pool_does_not_stall_another_account(
    make_settings: SettingsFactory, database_url: str, tmp_path: Path
) -> None:
    """More slow uploads than the default thread pool has threads, each from its own
    account, wait for the one transcode worker; meanwhile another account is served."""
    gate = tmp_path / "gate"
    pool = TranscodePool(1, job=gated_transcode)
    async for service in start_service(make_settings(database_url), transcoder=pool):
        uploaders = [f"slow-{n}" for n in range(40)]
        for appid in uploaders:
            service.add_account(appid)
        uploads = [
            asyncio.create_task(upload(service, str(gate).encode(), appid=appid))
            for appid in uploaders
        ]
        try:
            await wait_for(started_marker(gate).exists, "a slow transcode started", limit=30)
            served = await asyncio.wait_for(service.as_alice("App.Sip_Voice.List"), 30)
            assert served["code"] == 200
            login = await asyncio.wait_for(service.as_alice("App.Sip_Auth.Login"), 30)
            assert login["code"] == 200
            assert not any(task.done() for task in uploads)
        finally:
            gate.touch()
        bodies = await asyncio.gather(*uploads)
        assert all(body["code"] == 200 for body in bodies), bodies[0]
