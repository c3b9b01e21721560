"""What the demo carrier plays: a 425 Hz tone, one second on and one off, without end.

The tone is encoded once per codec and cut into 20 ms frames with `rtp.stream.split_frames`;
`Looped` hands them to an `RtpStream` as a voice that never ends, so the demo's streams
run on a `MediaClock` exactly like the engine's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import overload

from ivrcast.rtp.g711 import SILENCE_FRAMES, encode_alaw, encode_ulaw
from ivrcast.rtp.stream import Frame, split_frames

RATE = 8000
ENDLESS = 1 << 62  # frames: longer than any call


def _tone() -> list[int]:
    """Two seconds: 425 Hz for one, silence for the other (the sound of a line)."""
    return [
        int(6000 * math.sin(2 * math.pi * 425 * n / RATE)) if n < RATE else 0
        for n in range(2 * RATE)
    ]


class Looped(Sequence[Frame]):
    """`frames` again and again, as a sequence too long to end during a call."""

    def __init__(self, frames: Sequence[Frame]) -> None:
        self._frames = frames
        self._count = len(frames)

    def __len__(self) -> int:
        return ENDLESS

    @overload
    def __getitem__(self, index: int) -> Frame: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Frame]: ...

    def __getitem__(self, index: int | slice) -> Frame | Sequence[Frame]:
        if isinstance(index, slice):
            raise TypeError("a looped voice cannot be sliced")
        return self._frames[index % self._count]


_samples = _tone()
TONE: dict[str, Looped] = {
    "PCMU": Looped(split_frames(encode_ulaw(_samples), SILENCE_FRAMES["PCMU"])),
    "PCMA": Looped(split_frames(encode_alaw(_samples), SILENCE_FRAMES["PCMA"])),
}
