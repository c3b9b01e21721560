"""`[recordings] keep_days`: the sweep deletes recordings older than that, and nothing
else in the folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ivrcast.recordings import recording_path, sweep_recordings

NOW = 1_800_000_000.0
DAY = 86400
OLD = "0190c5a0-1c2b-7000-8000-0123456789ab"
NEW = "0190c5a0-1c2b-7001-8001-0123456789ab"


def aged(path: Path, days: float) -> Path:
    path.write_bytes(b"RIFF")
    os.utime(path, (NOW - days * DAY, NOW - days * DAY))
    return path


def test_sweep_deletes_only_old_recordings(tmp_path: Path) -> None:
    old = aged(recording_path(tmp_path, OLD), 31)
    new = aged(recording_path(tmp_path, NEW), 29)
    stranger = aged(tmp_path / "notes.wav", 400)
    assert sweep_recordings(tmp_path, keep_days=30, now=NOW) == 1
    assert not old.exists()
    assert new.exists()
    assert stranger.exists()
    assert sweep_recordings(tmp_path / "missing", keep_days=30, now=NOW) == 0


@pytest.mark.parametrize("name", ["../secret.key", "x.wav", OLD.upper(), OLD + "/x", ""])
def test_only_a_call_uuid_names_a_recording(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a call uuid"):
        recording_path(tmp_path, name)
