"""A transcode job that runs only when the test says so, for the transcode pool's tests.

The job runs in a worker process, so it talks to the test through files: `data` is the
path of a gate file; the job creates `<gate>.started`, waits until the gate exists, then
transcodes a short tone. A test can thus hold a worker busy for as long as it needs and
see which jobs have started, without any timing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ivrcast.demo_account import demo_tone
from ivrcast.voices.pool import VoiceLimits
from ivrcast.voices.transcode import EncodedVoice, transcode

GIVE_UP_SECONDS = 60.0


def started_marker(gate: Path) -> Path:
    return gate.with_name(gate.name + ".started")


def gated_transcode(data: bytes, limits: VoiceLimits) -> EncodedVoice:
    gate = Path(data.decode())
    started_marker(gate).touch()
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while not gate.exists():  # the test opens the gate; a worker must never hang forever
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.005)
    return transcode(demo_tone(seconds=0.2), max_duration=limits.max_seconds)


def crash_on_marked(data: bytes, limits: VoiceLimits) -> EncodedVoice:
    """Kill the worker, as a decoder crash would, when `data` starts with `crash`."""
    if data.startswith(b"crash"):
        os._exit(70)
    return transcode(demo_tone(seconds=0.2), max_duration=limits.max_seconds)


def refuse_to_run(data: bytes, limits: VoiceLimits) -> EncodedVoice:
    raise AssertionError("this voice must be refused before it is transcoded")
