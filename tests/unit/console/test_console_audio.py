"""The WAV a browser plays is the stored µ-law, expanded exactly as G.711 says."""

from __future__ import annotations

import io
import struct
import wave

from ivrcast.console.audio import ulaw_to_pcm16, wav_from_ulaw
from ivrcast.rtp.g711 import decode_ulaw


def test_every_mu_law_code_expands_as_the_rtp_decoder_does() -> None:
    codes = bytes(range(256))
    samples = struct.unpack("<256h", ulaw_to_pcm16(codes))
    assert list(samples) == decode_ulaw(codes)


def test_the_wav_is_16_bit_mono_at_8_khz() -> None:
    with wave.open(io.BytesIO(wav_from_ulaw(b"\xff" * 160 + b"\x00" * 160))) as played:
        assert (played.getnchannels(), played.getsampwidth(), played.getframerate()) == (1, 2, 8000)
        frames = played.readframes(320)
    assert struct.unpack("<320h", frames)[0] == 0
    assert struct.unpack("<320h", frames)[-1] == -32124
