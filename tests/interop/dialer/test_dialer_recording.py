"""`record=1` through the whole dialer: the demo carrier answers one call and is busy for
the other; the answered call's recording is in `[recordings] dir` (0700), its record
links to it with a valid signature, and the busy call has neither."""

from __future__ import annotations

import json
import stat
import wave
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from dialer_helpers import (
    call_rows,
    count_final,
    running_dialer,
    seed_account,
    settings_for,
)
from dialer_helpers import submit as submit_task
from sqlalchemy import select

from ivrcast.credentials import load_secret_key
from ivrcast.recordings import RecordingLinks, recording_path
from ivrcast.store.engine import Database
from ivrcast.store.tables import call_records
from waiting import wait_for_in_thread


async def test_answered_call_is_recorded_and_linked(database: Database, tmp_path: Path) -> None:
    account_id, voice_id = seed_account(database)
    answered, busy = "+628120000010", "+628120000015"
    task_id = submit_task(database, account_id, voice_id, [answered, busy], record=True)
    settings = settings_for(str(database.url), tmp_path)
    async with running_dialer(settings):
        await wait_for_in_thread(
            lambda: count_final(database, task_id) == 2, "2 final calls", limit=30
        )
    rows = {row["number"]: row for row in call_rows(database, task_id)}
    assert rows[answered]["recorded"] is True
    assert rows[busy]["recorded"] is False  # asked for, but never answered
    folder = settings.recordings_dir
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    path = recording_path(folder, rows[answered]["uuid"])
    with wave.open(str(path)) as recording:
        assert (recording.getnchannels(), recording.getframerate()) == (2, 8000)
        seconds = recording.getnframes() / 8000
    row = rows[answered]
    assert abs(seconds - (row["ended_at"] - row["answered_at"]).total_seconds()) < 0.1
    assert not recording_path(folder, rows[busy]["uuid"]).exists()

    with database.read() as conn:
        payloads = {
            uuid: json.loads(payload)
            for uuid, payload in conn.execute(select(call_records.c.uuid, call_records.c.payload))
        }
    assert payloads[rows[busy]["uuid"]]["recordurl"] == ""
    url = urlsplit(payloads[row["uuid"]]["recordurl"])
    assert f"{url.scheme}://{url.netloc}" == "http://127.0.0.1:8080"
    assert url.path == f"/v1/recordings/{row['uuid']}"
    query = parse_qs(url.query)
    links = RecordingLinks.for_settings(settings, load_secret_key(settings))
    now = datetime.now(UTC)
    assert links.check(row["uuid"], query["expires"][0], query["sig"][0], now=now)


async def test_detection_runs_for_amd_tasks_only(database: Database, tmp_path: Path) -> None:
    """The dialer hands `[amd]` to the engine for `amd=1` tasks: the demo carrier answers
    with a steady tone, which is a beep to the detector, so with `amdaction=hangup` the
    call ends in state `machine`; the same call without detection plays the voice."""
    account_id, voice_id = seed_account(database)
    detected = submit_task(
        database, account_id, voice_id, ["+628120000020"], amd=True, amdaction="hangup"
    )
    plain = submit_task(database, account_id, voice_id, ["+628120000030"])
    settings = settings_for(str(database.url), tmp_path)
    async with running_dialer(settings):
        await wait_for_in_thread(
            lambda: count_final(database, detected) + count_final(database, plain) == 2,
            "2 final calls",
            limit=30,
        )
    (row,) = call_rows(database, detected)
    assert (row["status"], row["answered_by"]) == ("machine", "machine")
    assert row["sip_reason"] == "answering machine"
    assert 0 < row["amd_ms"] <= settings.amd.total_ms
    (other,) = call_rows(database, plain)
    assert (other["status"], other["answered_by"], other["amd_ms"]) == ("completed", None, None)
