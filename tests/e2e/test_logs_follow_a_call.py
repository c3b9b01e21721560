"""One grep for a call's uuid shows its whole life, across the API and dialer processes
of a real `ivrcast serve` dialing the demo carrier."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
from e2e_server import CallbackReceiver

from ivrcast.demo_account import demo_tone
from service_process import IVRCAST, start_server, stop_server


def test_one_grep_for_a_call_uuid_follows_it_through_both_processes(
    tmp_path: Path, callback_receiver: CallbackReceiver
) -> None:
    callback_url = callback_receiver.url
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
        while not callback_receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a condition (the record's arrival), with a deadline
        assert callback_receiver.received, server.log.read_text(errors="replace")
    finally:
        stop_server(server)
    record = callback_receiver.records()[0]
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
