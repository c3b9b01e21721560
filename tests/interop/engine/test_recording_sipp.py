"""A recorded call against SIPp echoing our RTP (`-rtp_echo`): the right channel holds
what came back (our own tone), the left what we sent, both as long as the call was
answered."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from engine_helpers import SippRun, call_request, encoded, tone_bursts
from recording_checks import best_correlation, envelope, peak_frequency, read_stereo

from ivrcast.sip import Engine

Sipp = Callable[..., Awaitable[SippRun]]


async def test_echoed_voice_is_on_the_right_beside_the_sent_voice(
    engine: Engine, sipp: Sipp, tmp_path: Path
) -> None:
    run = await sipp("uas_answer_wait_bye.xml", "-rtp_echo")
    path = tmp_path / "call.wav"
    request = replace(call_request(run.trunk, encoded(tone_bursts(2.0))), record_to=path)
    outcome = await engine.originate(request)
    assert await run.finish() == 0, run.logs()
    assert outcome.status == "completed", run.logs()
    assert outcome.recorded, run.logs()
    assert outcome.answered_at is not None
    assert outcome.ended_at is not None

    left, right = read_stereo(path)
    answered = (outcome.ended_at - outcome.answered_at).total_seconds()
    assert abs(len(left) / 8000 - answered) < 0.1, (len(left), answered)
    assert abs(peak_frequency(left) - 1000) < 5
    assert abs(peak_frequency(right) - 1000) < 5
    assert best_correlation(envelope(left), envelope(right)) > 0.9


async def test_unrecorded_call_writes_nothing(engine: Engine, sipp: Sipp, tmp_path: Path) -> None:
    run = await sipp("uas_answer_wait_bye.xml", "-rtp_echo")
    outcome = await engine.originate(call_request(run.trunk, encoded(tone_bursts(0.5))))
    assert await run.finish() == 0, run.logs()
    assert outcome.status == "completed"
    assert not outcome.recorded
    assert not any(path.suffix == ".wav" for path in await asyncio.to_thread(tmp_path.iterdir))
