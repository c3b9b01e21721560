"""One grep for a call's uuid shows its whole life, across the API and dialer processes
of a real `ivrcast serve` dialing the demo carrier."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from ivrcast.demo_account import demo_tone
from service_process import IVRCAST, start_server, stop_server


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the server's log, not this one."""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A callback receiver on loopback that acknowledges every record."""
    handler = type("Receiver", (_Receiver,), {"bodies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cb", handler.bodies
    server.shutdown()
    server.server_close()


def test_one_grep_for_a_call_uuid_follows_it_through_both_processes(
    tmp_path: Path, receiver: tuple[str, list[bytes]]
) -> None:
    callback_url, bodies = receiver
    config = tmp_path / "ivrcast.toml"
    config.write_text(
        '[countries.id]\nwindow = "00:00-24:00"\n'
        "[security]\nallow_private_urls = true\n"
        # Deliveries are logged at DEBUG: one line per record acknowledged.
        '[logging.levels]\n"ivrcast.callbacks" = "DEBUG"\n'
    )
    data = tmp_path / "data"
    env = {**os.environ, "IVRCAST_DATA_DIR": str(data), "IVRCAST_CONFIG": str(config)}
    env.pop("IVRCAST_DATABASE_URL", None)
    wav = tmp_path / "hello.wav"
    wav.write_bytes(demo_tone(1.0))
    for args in (
        ["account", "create", "--appid", "follow", "--accesskey", "k3y-follow",
         "--callback-url", callback_url, "--callback-secret", "s3cret"],
        ["voice", "upload", "hello", str(wav), "--appid", "follow"],
    ):  # fmt: skip
        done = subprocess.run([*IVRCAST, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    server = start_server(data, config=config)
    try:
        answer = httpx.post(
            server.url + "/api/yunhu",
            data={
                "service": "App.Sip_Call.PlayVoice",
                "appid": "follow",
                "accesskey": "k3y-follow",
                "nationcode": "id",
                "voicetype": "1",
                "voicefile": "hello",
                "destnumber": "081234567800",
                "userkey": "0",
                "todayonly": "2",
            },
        ).json()
        assert answer["code"] == 200, answer
        task_id = answer["data"]["taskid"]
        deadline = time.monotonic() + 60
        while not bodies and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a condition (the record's arrival), with a deadline
        assert bodies, server.log.read_text(errors="replace")
    finally:
        stop_server(server)
    record = httpx.Response(200, content=bodies[0]).json()
    call_uuid = record["uuid"]
    log = server.log.read_text(errors="replace").splitlines()
    call_lines = [line for line in log if f"call_uuid={call_uuid}" in line]
    events = [line.split("event=", 1)[1].split()[0] for line in call_lines]
    # The dialer process: claimed, INVITE sent, answered, ended, record queued ...
    for event in ("dialer.claimed", "sip.originate", "dialer.answered", "dialer.finished"):
        assert event in events, "\n".join(call_lines)
    # ... and the API process, whose callback sender delivered the record.
    assert "callback_delivered" in events, "\n".join(call_lines)
    # The dialer's lines name the task, which the API logged once when it was created.
    assert all(f"task_id={task_id}" in line for line in call_lines if "event=dialer." in line)
    task_lines = [line for line in log if f"task_id={task_id}" in line]
    assert any("event=api.task_created" in line for line in task_lines), "\n".join(task_lines)
