"""`transcode`: every common format to 8 kHz G.711, and clear refusals for the rest."""

from __future__ import annotations

import array
import importlib
import io
import random
import time
from types import SimpleNamespace

import pytest
from voice_samples import (
    ALAW,
    SAMPLES,
    ULAW,
    Sample,
    encode_pcm,
    encode_tone,
    encode_video,
    frame_rms,
)

from ivrcast.errors import VoiceError
from ivrcast.voices import (
    EmptyVoice,
    EncodedVoice,
    NoAudioStream,
    NotAudio,
    VoiceTooLong,
    transcode,
)

WAV_8K = next(sample for sample in SAMPLES if sample.id == "wav-8k-mono-s16")
FLAC = next(sample for sample in SAMPLES if sample.id == "flac")
LOUD = 0.5 * 11585  # half the RMS of the half-scale test tone
QUIET = 64.0  # about -54 dBFS: lossy codecs leave a faint tail after the tone


@pytest.fixture(scope="module")
def fixtures() -> dict[str, bytes]:
    return {sample.id: encode_tone(sample) for sample in SAMPLES}


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.id for sample in SAMPLES])
def test_tone_then_silence(sample: Sample, fixtures: dict[str, bytes]) -> None:
    voice = transcode(fixtures[sample.id])

    assert voice.source_format == sample.source_format
    assert len(voice.pcmu) == len(voice.pcma)
    assert len(voice.pcmu) % 160 == 0
    assert voice.duration_ms == len(voice.pcmu) // 8
    # 2 s of audio, within one 20 ms frame, plus the codec's own end padding.
    assert 2000 - 20 <= voice.duration_ms <= 2000 + 20 + sample.slack_ms
    for encoded, table in ((voice.pcmu, ULAW), (voice.pcma, ALAW)):
        levels = frame_rms(encoded, table)
        # Skip the codecs' ramp-up and the frames around the tone's end.
        assert min(levels[5:45]) > LOUD, "the tone's first second must be loud"
        assert max(levels[55:95]) < QUIET, "the second second must be silent"


def test_renditions_are_padded_with_silence_to_whole_packets() -> None:
    pcm = array.array("h", [8000] * 8040)  # 1.005 s, not a whole number of 20 ms packets
    voice = transcode(encode_pcm(WAV_8K, pcm))

    assert voice.duration_ms == 1020
    assert len(voice.pcmu) == len(voice.pcma) == 8160
    assert voice.pcmu[8040:] == b"\xff" * 120
    assert voice.pcma[8040:] == b"\xd5" * 120
    assert ULAW[voice.pcmu[0]] == pytest.approx(8000, rel=0.05)


def test_every_linear_value_encodes_to_its_g711_level() -> None:
    # 8 kHz mono s16 needs no resampling, so the encoders see every value exactly.
    values = array.array("h", range(-32768, 32768))
    voice = transcode(encode_pcm(WAV_8K, values))

    for encoded, table, reference in (
        (voice.pcmu, ULAW, _linear_to_ulaw),
        (voice.pcma, ALAW, _linear_to_alaw),
    ):
        levels = sorted(set(table))
        position = {level: index for index, level in enumerate(levels)}
        disagreements = 0
        for value, code in zip(values, encoded, strict=False):
            expected = reference(value)
            if code != expected:
                # FFmpeg's tables place some decision thresholds one level away from
                # the Sun reference coder's truncation; never further.
                disagreements += 1
                assert abs(position[table[code]] - position[table[expected]]) == 1, value
        assert disagreements < 0.02 * len(values)


def test_too_long_is_refused() -> None:
    with pytest.raises(VoiceTooLong, match=r"longer than the limit of 1\.5 seconds"):
        transcode(encode_tone(WAV_8K, tone=1.0, silence=1.0), max_duration=1.5)


def test_exactly_at_the_limit_is_accepted() -> None:
    voice = transcode(encode_tone(WAV_8K, tone=1.0, silence=1.0), max_duration=2.0)
    assert voice.duration_ms == 2000


def test_too_long_stops_decoding_early(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode_tone(WAV_8K, tone=1.0, silence=59.0)
    sources: list[io.BytesIO] = []

    def spy(initial: bytes) -> io.BytesIO:
        sources.append(io.BytesIO(initial))
        return sources[-1]

    # The package exports the function `transcode`, which hides the module's name.
    transcode_module = importlib.import_module("ivrcast.voices.transcode")
    monkeypatch.setattr(transcode_module, "io", SimpleNamespace(BytesIO=spy))
    with pytest.raises(VoiceTooLong):
        transcode(data, max_duration=2.0)
    assert sources[0].tell() < len(data) // 10


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param(b"", NotAudio, id="empty"),
        pytest.param(random.Random(7).randbytes(50_000), NotAudio, id="random-bytes"),
        pytest.param(b"Dear customer,\nthis is not a voice.\n" * 50, NotAudio, id="text"),
        pytest.param(b"1\n00:00:01,000 --> 00:00:02,000\nhello\n", NotAudio, id="subtitles"),
        # Demuxers that open other files or URLs must never run on an upload.
        pytest.param(b"ffconcat version 1.0\nfile '/etc/passwd'\n", NotAudio, id="concat"),
        pytest.param(
            b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
            NotAudio,
            id="hls-playlist",
        ),
    ],
)
def test_not_audio(data: bytes, error: type[VoiceError]) -> None:
    with pytest.raises(error, match="not audio"):
        transcode(data)


def test_image_has_no_audio_stream() -> None:
    png = encode_video("image2pipe", "png", frames=1)
    assert png.startswith(b"\x89PNG")
    with pytest.raises(NoAudioStream, match=r"no audio stream \(it holds only video\)"):
        transcode(png)


def test_silent_video_has_no_audio_stream() -> None:
    with pytest.raises(NoAudioStream, match="no audio stream"):
        transcode(encode_video("mp4", "mpeg4", frames=10))


def test_audio_stream_without_samples_is_empty() -> None:
    # FLAC keeps its headers with no samples (an empty WAV is not even a valid WAV).
    with pytest.raises(EmptyVoice, match="empty"):
        transcode(encode_pcm(FLAC, array.array("h")))


def test_damaged_files_fail_cleanly_and_quickly(fixtures: dict[str, bytes]) -> None:
    # Truncated and bit-flipped variants of every fixture: each must decode or raise a
    # VoiceError (anything else would be a 500 or worse), and none may hang.
    rng = random.Random(20240601)
    seeds = list(fixtures.values())
    started = time.monotonic()
    outcomes: set[str] = set()
    for _ in range(400):
        data = bytearray(rng.choice(seeds))
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)) :]
        else:
            for _ in range(rng.randrange(1, 40)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            voice = transcode(bytes(data), max_duration=5.0)
        except VoiceError as exc:
            outcomes.add(type(exc).__name__)
        else:
            assert isinstance(voice, EncodedVoice)
            assert len(voice.pcmu) % 160 == 0
            outcomes.add("ok")
    assert {"ok", "NotAudio"} <= outcomes
    assert time.monotonic() - started < 20


def test_errors_are_voice_errors() -> None:
    for error in (NotAudio, NoAudioStream, EmptyVoice, VoiceTooLong):
        assert issubclass(error, VoiceError)


def _linear_to_ulaw(value: int) -> int:
    """The Sun/CCITT reference µ-law encoder (g711.c), on 16-bit input."""
    value >>= 2
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + (0x84 >> 2)
    for segment, end in enumerate((0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)):
        if value <= end:
            return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask
    return 0x7F ^ mask


def _linear_to_alaw(value: int) -> int:
    """The Sun/CCITT reference A-law encoder (g711.c), on 16-bit input."""
    value >>= 3
    mask = 0xD5
    if value < 0:
        value, mask = -value - 1, 0x55
    for segment, end in enumerate((0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)):
        if value <= end:
            shift = 1 if segment < 2 else segment
            return ((segment << 4) | ((value >> shift) & 0x0F)) ^ mask
    return 0x7F ^ mask
