"""Absurd audio is refused from its headers, before decoding; transcoding runs in a
bounded pool of worker processes, one voice at a time per account."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

import pytest
from voice_samples import Sample, encode_tone

from gated_transcode import (
    crash_on_marked,
    gated_transcode,
    started_marker,
)
from ivrcast.voices import NotAudio, SampleRateTooHigh, TooManyChannels, VoiceTooLong, transcode
from ivrcast.voices.pool import TranscodePool, VoiceLimits
from waiting import wait_for

# The attack of issue 13 was 590 s of 8-channel 192 kHz FLAC; these are short, since
# what matters is what the headers say.
FLAC_8CH_192K = Sample("flac-7.1-192k", "flac", "flac", 192_000, "7.1", "flac/flac")
FLAC_MONO_192K = Sample("flac-mono-192k", "flac", "flac", 192_000, "mono", "flac/flac")
FLAC_MONO_8K = Sample("flac-mono-8k", "flac", "flac", 8000, "mono", "flac/flac")
LIMITS = VoiceLimits(max_seconds=600.0, max_channels=2, max_sample_rate=48_000)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to decode a packet fails the test."""

    def refuse(*args: Any) -> Any:
        raise AssertionError("decoding started")

    # The package exports the function `transcode`, which hides the module's name.
    module = importlib.import_module("ivrcast.voices.transcode")
    monkeypatch.setattr(module, "_decode_pcm", refuse)


@pytest.mark.usefixtures("no_decoding")
def test_eight_channels_are_refused_from_the_headers() -> None:
    data = encode_tone(FLAC_8CH_192K, tone=0.05, silence=0.0)
    with pytest.raises(TooManyChannels, match="the audio has 8 channels; at most 2 are accepted"):
        transcode(data, max_channels=2, max_sample_rate=192_000)


@pytest.mark.usefixtures("no_decoding")
def test_a_192_khz_rate_is_refused_from_the_headers() -> None:
    data = encode_tone(FLAC_MONO_192K, tone=0.05, silence=0.0)
    with pytest.raises(
        SampleRateTooHigh, match="sampled at 192000 Hz; at most 48000 Hz is accepted"
    ):
        transcode(data, max_channels=2, max_sample_rate=48_000)


@pytest.mark.usefixtures("no_decoding")
def test_a_declared_duration_over_the_limit_is_refused_from_the_headers() -> None:
    data = encode_tone(FLAC_MONO_8K, tone=0.5, silence=4.5)
    with pytest.raises(
        VoiceTooLong, match=r"declares 5\.0 seconds of audio, longer than the limit of 2 seconds"
    ):
        transcode(data, max_duration=2.0)


def test_within_the_limits_the_voice_is_transcoded() -> None:
    data = encode_tone(FLAC_MONO_8K, tone=0.5, silence=0.5)
    voice = transcode(data, max_duration=2.0, max_channels=1, max_sample_rate=8000)
    assert voice.duration_ms == 1000


async def test_the_pool_refuses_in_the_worker_with_the_same_error() -> None:
    pool = TranscodePool(1)
    try:
        with pytest.raises(TooManyChannels, match="the audio has 8 channels") as caught:
            await pool.transcode(1, encode_tone(FLAC_8CH_192K, tone=0.05, silence=0.0), LIMITS)
        assert caught.value.channels == 8
        voice = await pool.transcode(1, encode_tone(FLAC_MONO_8K, tone=0.5, silence=0.5), LIMITS)
        assert voice.duration_ms == 1000
    finally:
        pool.shutdown()


async def test_an_account_s_voices_go_one_at_a_time(tmp_path: Path) -> None:
    """Two workers: while account 1's first voice runs, its second waits for its turn,
    and account 2's voice takes the free worker."""
    pool = TranscodePool(2, job=gated_transcode)
    gates = {name: tmp_path / name for name in ("a1", "a2", "b1")}

    def submit(account_id: int, name: str) -> asyncio.Task[Any]:
        return asyncio.create_task(
            pool.transcode(account_id, str(gates[name]).encode(), LIMITS), name=name
        )

    try:
        a1 = submit(1, "a1")
        await wait_for(started_marker(gates["a1"]).exists, "a1 started", limit=30)
        a2 = submit(1, "a2")
        await wait_for(lambda: pool.pending(1) == 2, "a2 waiting for its turn", limit=30)
        b1 = submit(2, "b1")
        # The executor is first come, first served: had a2 been handed to it, a2 would
        # hold the second worker and b1 could not start.
        await wait_for(started_marker(gates["b1"]).exists, "b1 started beside a1", limit=30)
        assert not started_marker(gates["a2"]).exists()
        gates["a1"].touch()
        await a1
        await wait_for(started_marker(gates["a2"]).exists, "a2 started after a1", limit=30)
        gates["a2"].touch()
        gates["b1"].touch()
        assert (await a2).duration_ms == (await b1).duration_ms == 200
        assert pool.pending(1) == pool.pending(2) == 0
    finally:
        for gate in gates.values():
            gate.touch()
        pool.shutdown()


async def test_a_worker_that_dies_fails_only_its_own_voice() -> None:
    pool = TranscodePool(1, job=crash_on_marked)
    try:
        with pytest.raises(NotAudio, match="the decoder stopped on this file"):
            await pool.transcode(1, b"crash", LIMITS)
        # The pool starts afresh: the next voices, of any account, are transcoded.
        voice = await pool.transcode(1, b"fine", LIMITS)
        assert voice.duration_ms == 200
        assert (await pool.transcode(2, b"fine", LIMITS)).duration_ms == 200
        # Voices of other accounts in the pool when a worker dies are tried again.
        outcomes = await asyncio.gather(
            pool.transcode(1, b"crash", LIMITS),
            pool.transcode(2, b"fine", LIMITS),
            pool.transcode(3, b"fine", LIMITS),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], NotAudio)
        assert [getattr(o, "duration_ms", o) for o in outcomes[1:]] == [200, 200]
    finally:
        pool.shutdown()
