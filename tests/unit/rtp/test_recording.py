"""A call's recording: left = sent, right = received placed by RTP timestamp, streamed
to disk a block at a time, read back with the standard library's `wave`."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest

from ivrcast.rtp.g711 import (
    ALAW_TO_LINEAR,
    FRAME_SAMPLES,
    ULAW_TO_LINEAR,
    alaw_encode_sample,
    ulaw_encode_sample,
)
from ivrcast.rtp.recording import BLOCK, CallRecorder

TS0 = 0xFFFFFF00  # the far end's first timestamp: it wraps within the call


def frame_of(value: int, codec: str = "PCMU") -> bytes:
    encode = ulaw_encode_sample if codec == "PCMU" else alaw_encode_sample
    return bytes([encode(value)]) * FRAME_SAMPLES


def read_channels(path: Path) -> tuple[wave.Wave_read, list[int], list[int]]:
    with wave.open(str(path), "rb") as reader:
        data = reader.readframes(reader.getnframes())
    samples = struct.unpack(f"<{len(data) // 2}h", data)
    return reader, list(samples[0::2]), list(samples[1::2])


def level(samples: list[int], frame: int) -> set[int]:
    return set(samples[frame * FRAME_SAMPLES : (frame + 1) * FRAME_SAMPLES])


def test_both_sides_on_one_timeline_with_lost_and_late_packets_in_place(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = CallRecorder(path, "PCMU")
    sent_values = [1000 + 100 * i for i in range(12)]
    received: dict[int, int] = {k: -2000 - 100 * k for k in range(8)}

    def receive(k: int) -> None:
        recorder.received(
            7, (TS0 + k * FRAME_SAMPLES) & 0xFFFFFFFF, memoryview(frame_of(received[k]))
        )

    for i, value in enumerate(sent_values):
        recorder.sent(frame_of(value))
        # The far end's first packet arrives after our second frame; packet 3 is lost,
        # packet 5 comes before 4.
        if i == 1:
            receive(0)
        elif i in (2, 3):
            receive(i - 1)
        elif i == 4:
            receive(5)
            receive(4)
        elif i >= 5 and i - 1 not in (3, 4, 5) and i - 1 < 8:
            receive(i - 1)
    recorder.close()

    reader, left, right = read_channels(path)
    assert (reader.getnchannels(), reader.getframerate(), reader.getsampwidth()) == (2, 8000, 2)
    assert reader.getnframes() == len(sent_values) * FRAME_SAMPLES
    for i, value in enumerate(sent_values):
        assert level(left, i) == {ULAW_TO_LINEAR[ulaw_encode_sample(value)]}
    # Packet k sits at frame 1 + k: beside the frame sent last when packet 0 came.
    silence = {0}
    assert level(right, 0) == silence
    for k in range(8):
        expected = silence if k == 3 else {ULAW_TO_LINEAR[ulaw_encode_sample(received[k])]}
        assert level(right, 1 + k) == expected, k
    assert level(right, 9) == level(right, 10) == level(right, 11) == silence


def test_alaw_decodes_with_its_own_law(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = CallRecorder(path, "PCMA")
    recorder.sent(frame_of(-3000, "PCMA"))
    recorder.received(1, 0, memoryview(frame_of(2500, "PCMA")))
    recorder.close()
    _, left, right = read_channels(path)
    assert set(left) == {ALAW_TO_LINEAR[alaw_encode_sample(-3000)]}
    assert set(right) == {ALAW_TO_LINEAR[alaw_encode_sample(2500)]}


def test_a_long_call_holds_only_a_few_blocks_and_writes_as_it_goes(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = CallRecorder(path, "PCMU")
    seconds = 30
    for i in range(seconds * 50):
        recorder.sent(frame_of(500))
        recorder.received(9, i * FRAME_SAMPLES, memoryview(frame_of(-500)))
        assert recorder.held_blocks <= 3
    # Everything but the last held seconds is on disk already.
    assert path.stat().st_size >= 44 + (seconds - 2) * BLOCK * 4
    recorder.close()
    reader, _left, right = read_channels(path)
    assert reader.getnframes() == seconds * 8000
    assert set(right) == {ULAW_TO_LINEAR[ulaw_encode_sample(-500)]}


def test_a_new_source_or_a_timestamp_jump_starts_where_the_call_stands(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = CallRecorder(path, "PCMU")
    recorder.sent(frame_of(0))
    recorder.received(1, 1000, memoryview(frame_of(700)))  # frame 0
    recorder.sent(frame_of(0))
    recorder.received(2, 5_000_000, memoryview(frame_of(1400)))  # new SSRC: frame 1
    recorder.sent(frame_of(0))
    recorder.received(2, 5_000_000 + 10 * BLOCK, memoryview(frame_of(2800)))  # jump: frame 2
    recorder.sent(frame_of(0))
    recorder.close()
    _, _, right = read_channels(path)
    assert [level(right, f) for f in range(4)] == [
        {ULAW_TO_LINEAR[ulaw_encode_sample(700)]},
        {ULAW_TO_LINEAR[ulaw_encode_sample(1400)]},
        {ULAW_TO_LINEAR[ulaw_encode_sample(2800)]},
        {0},
    ]


def test_a_recording_is_never_written_over_another(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    path.write_bytes(b"earlier")
    with pytest.raises(FileExistsError):
        CallRecorder(path, "PCMU")
    assert path.read_bytes() == b"earlier"


def test_a_call_that_ends_at_once_is_an_empty_valid_wav(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    CallRecorder(path, "PCMU").close()
    reader, left, _ = read_channels(path)
    assert reader.getnframes() == 0
    assert left == []
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_recording_lasts_until_the_call_ended_not_until_our_last_frame(
    tmp_path: Path,
) -> None:
    """After our last frame, the BYE's round trip still belongs to the call: silence on
    the left, and what the far end still sent on the right."""
    path = tmp_path / "call.wav"
    recorder = CallRecorder(path, "PCMU", started_at=100.0)
    for i in range(5):
        recorder.sent(frame_of(900))
        recorder.received(3, i * FRAME_SAMPLES, memoryview(frame_of(-900)))
    recorder.received(3, 5 * FRAME_SAMPLES, memoryview(frame_of(-900)))  # after our last
    recorder.close(ended_at=100.0 + 0.2)
    reader, left, right = read_channels(path)
    assert reader.getnframes() == 1600
    assert level(left, 4) == {ULAW_TO_LINEAR[ulaw_encode_sample(900)]}
    assert level(left, 5) == level(left, 9) == {0}
    assert level(right, 5) == {ULAW_TO_LINEAR[ulaw_encode_sample(-900)]}
    assert level(right, 6) == {0}
