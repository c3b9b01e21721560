"""Audio fixtures made with PyAV itself, and a G.711 reference decoder for checking output.

Every sample is a 440 Hz tone at half scale for `tone` seconds followed by `silence`
seconds of digital silence, so the energy envelope of a transcoded voice can be checked.
"""

from __future__ import annotations

import array
import io
import math
from dataclasses import dataclass

import av
from av.audio.layout import AudioLayout
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

TONE_FREQ = 440.0
TONE_AMPLITUDE = 0.5


@dataclass(frozen=True)
class Sample:
    """How to encode one fixture; `slack_ms` is the codec's end padding, if any."""

    id: str
    container: str
    codec: str
    rate: int
    layout: str
    source_format: str
    slack_ms: int = 0
    options: tuple[tuple[str, str], ...] = ()


SAMPLES = [
    Sample("wav-44k-stereo-s16", "wav", "pcm_s16le", 44100, "stereo", "wav/pcm_s16le"),
    Sample("wav-8k-mono-s16", "wav", "pcm_s16le", 8000, "mono", "wav/pcm_s16le"),
    Sample("wav-48k-stereo-f32", "wav", "pcm_f32le", 48000, "stereo", "wav/pcm_f32le"),
    Sample("wav-96k-5.1-s24", "wav", "pcm_s24le", 96000, "5.1", "wav/pcm_s24le"),
    Sample("wav-11k-mono-u8", "wav", "pcm_u8", 11025, "mono", "wav/pcm_u8"),
    Sample("mp3", "mp3", "libmp3lame", 44100, "stereo", "mp3/mp3float"),
    # FFmpeg's own Vorbis encoder (there is no libvorbis here) is marked experimental.
    Sample(
        "ogg-vorbis",
        "ogg",
        "vorbis",
        44100,
        "stereo",
        "ogg/vorbis",
        60,
        (("strict", "experimental"),),
    ),
    Sample("ogg-opus", "ogg", "libopus", 48000, "stereo", "ogg/opus", 20),
    # AAC frames are 1024 samples; the encoder pads the last one.
    Sample("m4a-aac", "ipod", "aac", 44100, "stereo", "mp4/aac", 60),
    Sample("flac", "flac", "flac", 44100, "stereo", "flac/flac"),
]


def tone_pcm(rate: int, channels: int, tone: float, silence: float) -> array.array[int]:
    """Interleaved s16 samples: the tone on every channel, then silence."""
    pcm = array.array("h")
    for i in range(round(tone * rate)):
        value = round(TONE_AMPLITUDE * 32767 * math.sin(2 * math.pi * TONE_FREQ * i / rate))
        pcm.extend([value] * channels)
    pcm.extend([0] * (round(silence * rate) * channels))
    return pcm


def encode_pcm(sample: Sample, pcm: array.array[int]) -> bytes:
    """Encode interleaved s16 `pcm` as `sample` says."""
    channels = AudioLayout(sample.layout).nb_channels
    out = io.BytesIO()
    with av.open(out, "w", format=sample.container) as container:
        stream = container.add_stream(sample.codec, rate=sample.rate, options=dict(sample.options))
        assert isinstance(stream, AudioStream)  # the codec is an audio codec
        stream.codec_context.layout = sample.layout
        total = len(pcm) // channels
        for start in range(0, total, 1024):
            count = min(1024, total - start)
            frame = av.AudioFrame(format="s16", layout=sample.layout, samples=count)
            frame.planes[0].update(pcm[start * channels : (start + count) * channels].tobytes())
            frame.sample_rate = sample.rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def encode_tone(sample: Sample, tone: float = 1.0, silence: float = 1.0) -> bytes:
    channels = AudioLayout(sample.layout).nb_channels
    return encode_pcm(sample, tone_pcm(sample.rate, channels, tone, silence))


def encode_video(container_format: str, codec: str, frames: int) -> bytes:
    """A small grey video (or, with `image2pipe`/`png`, an image) with no audio."""
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=25)
        assert isinstance(stream, VideoStream)  # the codec is a video (or image) codec
        stream.width, stream.height = 64, 48
        stream.pix_fmt = "rgb24" if codec == "png" else "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame(64, 48, stream.pix_fmt)
            for plane in frame.planes:
                plane.update(bytes([128]) * plane.buffer_size)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def ulaw_to_linear(code: int) -> int:
    """ITU-T G.711 µ-law expansion (the classic Sun reference decoder)."""
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return (0x84 - magnitude) if code & 0x80 else (magnitude - 0x84)


def alaw_to_linear(code: int) -> int:
    """ITU-T G.711 A-law expansion (the classic Sun reference decoder)."""
    code ^= 0x55
    segment = (code & 0x70) >> 4
    magnitude = (code & 0x0F) << 4
    if segment == 0:
        magnitude += 8
    else:
        magnitude = (magnitude + 0x108) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


ULAW = [ulaw_to_linear(code) for code in range(256)]
ALAW = [alaw_to_linear(code) for code in range(256)]


def frame_rms(encoded: bytes, table: list[int]) -> list[float]:
    """Root mean square of each 20 ms (160-byte) frame of a G.711 rendition."""
    levels = []
    for start in range(0, len(encoded), 160):
        values = [table[code] for code in encoded[start : start + 160]]
        levels.append(math.sqrt(sum(v * v for v in values) / len(values)))
    return levels
