"""Uploads (`App.Sip_Voice.Upload`, `/v1/voices`) and online voices cached by URL."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_service import Service, SettingsFactory, start_service

from ivrcast.demo_account import demo_tone
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head


async def upload(service: Service, name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    form = {"service": "App.Sip_Voice.Upload", "appid": "alice", "accesskey": "secret-key"}
    response = await service.client.post(
        "/api/yunhu", data={**form, "name": name, **extra}, files={"file": ("v.wav", data)}
    )
    body: dict[str, Any] = response.json()
    return body


async def test_an_uploaded_voice_is_listed_with_its_duration(sqlite_service: Service) -> None:
    body = await upload(sqlite_service, "promo_1", demo_tone(seconds=2.0))
    assert body["code"] == 200
    assert body["data"]["voice"]["duration_ms"] == 2000
    listed = await sqlite_service.as_alice("App.Sip_Voice.List")
    assert [v["name"] for v in listed["data"]["voices"]] == ["promo_1", "welcome"]


@pytest.mark.parametrize(
    ("name", "data", "param"),
    [
        pytest.param("a/b", demo_tone(), "name", id="path separator"),
        pytest.param("bad\x01name", demo_tone(), "name", id="control character"),
        pytest.param("", demo_tone(), "name", id="no name"),
        pytest.param("text", b"hello, this is not audio at all" * 10, "file", id="not audio"),
        pytest.param("big", b"RIFF" + b"\0" * 70_000, "file", id="larger than the limit"),
    ],
)
async def test_bad_uploads_are_refused_naming_the_parameter(
    make_settings: SettingsFactory, tmp_path: Path, name: str, data: bytes, param: str
) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    upgrade_to_head(Database(url))
    settings = make_settings(url, limits={"max_upload_bytes": 65_536})
    async for service in start_service(settings):
        body = await upload(service, name, data)
        assert body["code"] == 400, body
        assert body["msg"].startswith(f"{param}: "), body


async def test_a_missing_file_and_a_taken_name(sqlite_service: Service) -> None:
    response = await sqlite_service.client.post(
        "/api/yunhu",
        data={
            "service": "App.Sip_Voice.Upload",
            "appid": "alice",
            "accesskey": "secret-key",
            "name": "x",
        },
        files={"_": (None, "")},
    )
    assert response.json()["msg"].startswith("file: ")
    taken = await upload(sqlite_service, "welcome", demo_tone())
    assert taken["data"]["errors"]["code"] == 1101


class AudioServer:
    def __init__(self) -> None:
        self.hits = 0
        audio = demo_tone(seconds=1.5)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(audio)))
                self.end_headers()
                self.wfile.write(audio)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/voice.wav"


@pytest.fixture
def audio_server() -> Iterator[AudioServer]:
    server = AudioServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


async def test_an_online_voice_is_fetched_once_and_cached_by_url(
    make_settings: SettingsFactory, tmp_path: Path, audio_server: AudioServer
) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    upgrade_to_head(Database(url))
    settings = make_settings(url, security={"allow_private_urls": True})
    async for service in start_service(settings):
        for _ in range(2):
            body = await service.as_alice(
                "App.Sip_Call.PlayVoice",
                nationcode="id",
                destnumber="081234567890",
                voicetype=2,
                voicefile=audio_server.url,
            )
            assert body["code"] == 200, body
        assert audio_server.hits == 1
        missing = await service.as_alice(
            "App.Sip_Call.PlayVoice",
            nationcode="id",
            destnumber="081234567890",
            voicetype=2,
            voicefile=audio_server.url.replace("127.0.0.1", "127.0.0.1").rsplit(":", 1)[0] + ":9/x",
        )
        assert missing["data"]["errors"]["code"] == 1029
        assert missing["data"]["errors"]["codemsg"].startswith("voicefile: ")
