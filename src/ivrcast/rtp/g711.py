"""G.711 μ-law and A-law (ITU-T G.711), one byte per 8 kHz sample.

Calls send audio that was encoded once at upload (`ivrcast.voices`), so nothing here is
on the per-packet path; the tables serve tests, test peers and silence.
"""

from __future__ import annotations

from collections.abc import Iterable

ULAW_BIAS = 0x84  # G.711 μ-law bias added before segment search
ULAW_CLIP = 32635
ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)

# Encoded silence (a zero sample) in each law: what a call sends while waiting for keys.
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

FRAME_SAMPLES = 160  # 20 ms at 8 kHz
# One 20 ms frame of silence per codec, sent once a voice has ended.
SILENCE_FRAMES = {
    "PCMU": bytes([ULAW_SILENCE]) * FRAME_SAMPLES,
    "PCMA": bytes([ALAW_SILENCE]) * FRAME_SAMPLES,
}


def ulaw_encode_sample(sample: int) -> int:
    sign = 0
    if sample < 0:
        sample = -sample
        sign = 0x80
    sample = min(sample, ULAW_CLIP) + ULAW_BIAS
    exponent = max((sample >> 7).bit_length() - 1, 0)
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _ulaw_decode(code: int) -> int:
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    sample = ((((code & 0x0F) << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS
    return -sample if code & 0x80 else sample


def alaw_encode_sample(sample: int) -> int:
    value = sample >> 3  # A-law works on 13 bits
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    segment = next((i for i, end in enumerate(ALAW_SEGMENT_ENDS) if value <= end), 8)
    if segment >= 8:
        return 0x7F ^ mask
    code = segment << 4
    code |= (value >> 1 if segment < 2 else value >> segment) & 0x0F
    return code ^ mask


def _alaw_decode(code: int) -> int:
    code ^= 0x55
    value = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        value += 8
    else:
        value = (value + 0x108) << (segment - 1)
    return value if code & 0x80 else -value


ULAW_TO_LINEAR: tuple[int, ...] = tuple(_ulaw_decode(c) for c in range(256))
ALAW_TO_LINEAR: tuple[int, ...] = tuple(_alaw_decode(c) for c in range(256))


def encode_ulaw(samples: Iterable[int]) -> bytes:
    return bytes(ulaw_encode_sample(s) for s in samples)


def encode_alaw(samples: Iterable[int]) -> bytes:
    return bytes(alaw_encode_sample(s) for s in samples)


def decode_ulaw(data: bytes) -> list[int]:
    return [ULAW_TO_LINEAR[b] for b in data]


def decode_alaw(data: bytes) -> list[int]:
    return [ALAW_TO_LINEAR[b] for b in data]
