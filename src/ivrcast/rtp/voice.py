"""A voice as the media clock plays it: encoded once at upload, cut once into frames."""

from __future__ import annotations

from dataclasses import dataclass, field

from ivrcast.rtp.g711 import SILENCE_FRAMES
from ivrcast.rtp.stream import Frame, split_frames

RATE = 8000


@dataclass(frozen=True)
class EncodedAudio:
    """The voice encoded once at upload: 8 kHz mono G.711, one byte per sample."""

    pcmu: bytes
    pcma: bytes
    _frames: dict[str, tuple[Frame, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def for_codec(self, codec: str) -> bytes:
        return self.pcmu if codec == "PCMU" else self.pcma

    def frames_for(self, codec: str) -> tuple[Frame, ...]:
        """The voice cut into 20 ms frames, once per codec, for every call that plays it."""
        frames = self._frames.get(codec)
        if frames is None:
            audio = self.for_codec(codec)
            frames = self._frames[codec] = split_frames(audio, SILENCE_FRAMES[codec])
        return frames

    @property
    def duration(self) -> float:
        return len(self.pcmu) / RATE
