"""From any common audio file to the 8 kHz mono G.711 renditions RTP plays.

`transcode` decodes with PyAV (FFmpeg) from memory, resamples to 8000 Hz mono s16 and
encodes µ-law (PCMU) and A-law (PCMA) with FFmpeg's own G.711 encoders. It is CPU-bound
and synchronous: async callers run it in a worker thread.

Only the demuxers of audio formats (and of a few image and video containers, so that an
image or a silent video is reported as such) may read the bytes. FFmpeg's playlist and
concat demuxers would otherwise open other files or URLs named inside an upload, and no
demuxer may open anything beyond the bytes given.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import av
import av.error
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer

from ivrcast.voices.errors import (
    EmptyVoice,
    InvalidVoiceName,
    NoAudioStream,
    NotAudio,
    SampleRateTooHigh,
    TooManyChannels,
    VoiceTooLong,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
"""G.711 samples per second, one byte each (RFC 3551 §4.5.14)."""
FRAME_SAMPLES = 160
"""Samples in one 20 ms RTP packet, the unit the renditions are padded to."""

# Demuxer names as FFmpeg spells them; a demuxer matches when any of its comma-separated
# names is listed ("mov" is the MP4/M4A demuxer).
_DEMUXERS = (
    "wav,w64,aiff,caf,au,mp3,aac,ogg,flac,mov,matroska,amr,avi,"
    "png_pipe,jpeg_pipe,gif,webp_pipe,bmp_pipe"
)
_DEMUX_OPTIONS = {
    "format_whitelist": _DEMUXERS,
    # No protocol is called "none", so nothing beyond the in-memory bytes can be opened.
    "protocol_whitelist": "none",
}
_FORMAT_NAMES = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4", "matroska,webm": "matroska"}
_ENCODE_CHUNK = SAMPLE_RATE  # samples per frame handed to the G.711 encoders

VOICE_NAME_MAX = 64
_VOICE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class EncodedVoice:
    """A voice ready for RTP: 8000 Hz mono G.711, padded to whole 20 ms packets."""

    pcmu: bytes
    """µ-law, one byte per sample; the length is a multiple of 160."""
    pcma: bytes
    """A-law, as long as `pcmu`."""
    duration_ms: int
    """Playing time of the renditions (a multiple of 20, padding included)."""
    source_format: str
    """What was uploaded, as `container/codec`: `wav/pcm_s16le`, `mp4/aac`, `ogg/opus`."""


def validate_voice_name(name: str) -> str:
    """Return `name` unchanged if it may name a voice, else raise `InvalidVoiceName`.

    A name is 1 to 64 characters from the English letters, the digits, `_`, `-` and `.`,
    and does not start with `.`. Nothing is stripped or case-folded. So a name can never
    hold a path separator, white space, a control character or a non-ASCII look-alike,
    nor be `.`, `..` or a hidden-file name, wherever it ends up being used.
    """
    if not name:
        raise InvalidVoiceName(name, "is empty")
    if len(name) > VOICE_NAME_MAX:
        raise InvalidVoiceName(
            name, f"is {len(name)} characters long; at most {VOICE_NAME_MAX} are allowed"
        )
    if "/" in name or "\\" in name:
        raise InvalidVoiceName(name, "must not contain a path separator")
    if _CONTROL.search(name):
        raise InvalidVoiceName(name, "must not contain control characters")
    if name.startswith("."):
        raise InvalidVoiceName(name, "must not start with '.'")
    if not _VOICE_NAME.fullmatch(name):
        raise InvalidVoiceName(name, "may contain only English letters, digits, '_', '-' and '.'")
    return name


def transcode(
    data: bytes,
    *,
    max_duration: float = 600.0,
    max_channels: int | None = None,
    max_sample_rate: int | None = None,
) -> EncodedVoice:
    """Decode `data` (any common audio) into 8 kHz mono PCMU and PCMA renditions.

    Raises `NotAudio` when the bytes are not a media file FFmpeg can decode,
    `NoAudioStream` when the file holds no audio (a silent video, an image),
    `VoiceTooLong` when the file's headers declare more than `max_duration` seconds or
    as soon as more have been decoded (the rest is never read), `TooManyChannels` and
    `SampleRateTooHigh` from the headers (a small file of compressed silence can declare
    hours of 8-channel 192 kHz audio and cost seconds of CPU to decode), and `EmptyVoice`
    when the audio holds no samples. Header checks happen before any packet is decoded.
    Packets that fail to decode are skipped, as players do, unless nothing decodes.
    """
    max_samples = int(max_duration * SAMPLE_RATE)
    source = io.BytesIO(data)
    with (
        _map_av_errors(),
        # Tags are text in no promised encoding; a bad byte must not reject the audio.
        av.open(source, "r", options=_DEMUX_OPTIONS, metadata_errors="replace") as container,
    ):
        stream = _audio_stream(container)
        _check_declared(
            container,
            stream,
            max_duration=max_duration,
            max_channels=max_channels,
            max_sample_rate=max_sample_rate,
        )
        source_format = f"{_format_name(container)}/{stream.codec_context.name}"
        pcm, bad_packets = _decode_pcm(container, stream, max_samples, max_duration)
        if not pcm:
            if bad_packets:
                raise NotAudio("the audio stream could not be decoded")
            raise EmptyVoice()
        # Linear 0 encodes to exactly 0xFF in µ-law and 0xD5 in A-law: silence.
        pcm += bytes(-len(pcm) % (2 * FRAME_SAMPLES))
        pcmu = _encode_g711("pcm_mulaw", pcm)
        pcma = _encode_g711("pcm_alaw", pcm)
    logger.debug(
        "voice transcoded",
        extra={
            "event": "voice_transcoded",
            "source_format": source_format,
            "bytes_in": len(data),
            "samples": len(pcmu),
            "bad_packets": bad_packets,
        },
    )
    return EncodedVoice(pcmu, pcma, len(pcmu) * 1000 // SAMPLE_RATE, source_format)


@contextmanager
def _map_av_errors() -> Iterator[None]:
    """Turn every FFmpeg failure into `NotAudio`: the input is the only thing varying."""
    try:
        yield
    except av.error.FFmpegError as exc:
        raise NotAudio(f"the file is not audio that can be decoded ({exc.strerror})") from exc


def _audio_stream(container: InputContainer) -> AudioStream:
    audio = container.streams.audio
    for stream in audio:
        # A stream whose codec FFmpeg has no decoder for comes without a context.
        if stream.codec_context is not None:
            return stream
    if audio:
        raise NotAudio("the file's audio codec is not supported")
    found = sorted({stream.type for stream in container.streams})
    held = f"it holds only {', '.join(found)}" if found else "it holds no streams"
    raise NoAudioStream(f"the file has no audio stream ({held})")


def _check_declared(
    container: InputContainer,
    stream: AudioStream,
    *,
    max_duration: float,
    max_channels: int | None,
    max_sample_rate: int | None,
) -> None:
    """Refuse what the headers say is too much, before decoding anything."""
    context = stream.codec_context
    if max_channels is not None and context.channels > max_channels:
        raise TooManyChannels(context.channels, max_channels)
    if max_sample_rate is not None and context.sample_rate > max_sample_rate:
        raise SampleRateTooHigh(context.sample_rate, max_sample_rate)
    declared = _declared_seconds(container, stream)
    if declared is not None and declared > max_duration:
        raise VoiceTooLong(max_duration, declared=declared)


def _declared_seconds(container: InputContainer, stream: AudioStream) -> float | None:
    """The audio's length as the file states it, when it states one."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _format_name(container: InputContainer) -> str:
    name = container.format.name
    return _FORMAT_NAMES.get(name, name.split(",")[0])


def _decode_pcm(
    container: InputContainer, stream: AudioStream, max_samples: int, max_duration: float
) -> tuple[bytearray, int]:
    """Decode the stream to 8 kHz mono s16 bytes; also return how many packets failed."""
    pcm = bytearray()
    bad_packets = 0
    resampler: _Resampler | None = None
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            bad_packets += 1
            continue
        for frame in frames:
            if resampler is None or not resampler.accepts(frame):
                # Chained Ogg and some MP3s change rate or layout mid-stream, which
                # one resampler cannot follow.
                if resampler is not None:
                    pcm += resampler.flush()
                resampler = _Resampler(frame)
            pcm += resampler.resample(frame)
        if len(pcm) > 2 * max_samples:
            raise VoiceTooLong(max_duration)
    if resampler is not None:
        pcm += resampler.flush()
    if len(pcm) > 2 * max_samples:
        raise VoiceTooLong(max_duration)
    return pcm, bad_packets


class _Resampler:
    """An `AudioResampler` to 8 kHz mono s16 for frames shaped like the first one."""

    def __init__(self, first: AudioFrame) -> None:
        self._shape = _shape(first)
        self._resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def accepts(self, frame: AudioFrame) -> bool:
        return _shape(frame) == self._shape

    def resample(self, frame: AudioFrame) -> bytes:
        # Timestamps are dropped: gaps in them must not become inserted silence or
        # dropped audio, the samples are simply played in order.
        frame.pts = None
        return b"".join(_s16_bytes(out) for out in self._resampler.resample(frame))

    def flush(self) -> bytes:
        return b"".join(_s16_bytes(out) for out in self._resampler.resample(None))


def _shape(frame: AudioFrame) -> tuple[str, str, int]:
    return frame.format.name, frame.layout.name, frame.sample_rate


def _s16_bytes(frame: AudioFrame) -> bytes:
    # The plane's buffer may be padded past the last sample.
    return bytes(frame.planes[0])[: 2 * frame.samples]


def _encode_g711(codec: Literal["pcm_mulaw", "pcm_alaw"], pcm: bytearray) -> bytes:
    """Encode 8 kHz mono s16 bytes with FFmpeg's `pcm_mulaw` or `pcm_alaw` encoder."""
    context = av.CodecContext.create(codec, "w")
    context.sample_rate = SAMPLE_RATE
    context.layout = "mono"
    context.format = "s16"
    out = bytearray()
    chunk_bytes = 2 * _ENCODE_CHUNK
    for start in range(0, len(pcm), chunk_bytes):
        chunk = bytes(pcm[start : start + chunk_bytes])
        frame = AudioFrame(format="s16", layout="mono", samples=len(chunk) // 2)
        frame.planes[0].update(chunk)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start // 2
        for packet in context.encode(frame):
            out += bytes(packet)
    for packet in context.encode(None):
        out += bytes(packet)
    return bytes(out)
