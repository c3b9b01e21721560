"""Recording a call: what was sent (left) and what was received (right), one 8 kHz
16-bit stereo WAV, streamed to disk.

The sent side is the timeline: one 20 ms frame per media-clock tick, from the answer to
the hang-up. A received packet is placed by its RTP timestamp (RFC 3550 §5.1), counted
from the first packet of its SSRC, which is put where the sent side stood when it came;
so a lost packet leaves silence at its place and a late one still lands where it
belongs. Audio is kept as G.711 bytes in blocks of one second and written a block
behind the send position, which leaves late packets a second to arrive and bounds the
memory of a recording call to a few blocks (about 50 KB), whatever its length. Both
sides are decoded at write time by `bytes.translate` (a low- and a high-byte table),
so nothing per packet decodes audio.

A write error (a full disk) ends the recording, not the call: the file is removed and
`failed` says so.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

from ivrcast.rtp.g711 import (
    ALAW_SILENCE,
    ALAW_TO_LINEAR,
    FRAME_SAMPLES,
    ULAW_SILENCE,
    ULAW_TO_LINEAR,
)

logger = logging.getLogger(__name__)

RATE = 8000
CHANNELS = 2
SAMPLE_BYTES = 2
BLOCK = RATE  # samples per written block: one second, a whole number of frames
HELD_BLOCKS = 1  # blocks kept in memory behind the send position, for late packets
MAX_PAYLOAD = 8 * FRAME_SAMPLES  # no sane G.711 packet carries more than 160 ms
# The far end's timestamps jumped this far ahead of us: it restarted them; re-anchor.
MAX_AHEAD = 2 * BLOCK
HEADER_BYTES = 44
_U32 = 0xFFFFFFFF


def _byte_tables(linear: tuple[int, ...]) -> tuple[bytes, bytes]:
    """Translate tables giving the low and the high byte of each code's 16-bit sample."""
    words = [value & 0xFFFF for value in linear]
    return bytes(w & 0xFF for w in words), bytes(w >> 8 for w in words)


_TABLES = {"PCMU": _byte_tables(ULAW_TO_LINEAR), "PCMA": _byte_tables(ALAW_TO_LINEAR)}
_SILENCE = {"PCMU": ULAW_SILENCE, "PCMA": ALAW_SILENCE}


def wav_header(data_bytes: int) -> bytes:
    """The 44-byte RIFF/WAVE header of 8 kHz 16-bit stereo PCM with `data_bytes` of audio."""
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        CHANNELS,
        RATE,
        RATE * CHANNELS * SAMPLE_BYTES,
        CHANNELS * SAMPLE_BYTES,
        8 * SAMPLE_BYTES,
        b"data",
        data_bytes,
    )


class CallRecorder:
    """One call's recording; `sent` and `received` are the stream's media tap."""

    def __init__(
        self, path: Path, codec: str, *, label: str = "", started_at: float | None = None
    ) -> None:
        """`started_at`: the answer's time on the monotonic clock `close(ended_at)` uses."""
        self.path = path
        self.label = label
        self._started_at = started_at
        self._low, self._high = _TABLES[codec]
        self._silence_block = bytes([_SILENCE[codec]]) * BLOCK
        # O_EXCL: a call's recording is written once, never over another file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._file.write(wav_header(0))
        self._blocks: dict[int, tuple[bytearray, bytearray]] = {}
        self._sent = 0  # samples on the timeline so far
        self._written = 0  # samples written to the file (whole blocks until close)
        self._ssrc: int | None = None
        self._anchor_ts = 0
        self._anchor_pos = 0
        self.failed = False
        self.closed = False

    @property
    def samples(self) -> int:
        """The length of the recording so far, in samples per channel."""
        return self._sent

    @property
    def held_blocks(self) -> int:
        """Blocks in memory, not yet written: a few, however long the call."""
        return len(self._blocks)

    def _block(self, index: int) -> tuple[bytearray, bytearray]:
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = (
                bytearray(self._silence_block),
                bytearray(self._silence_block),
            )
        return block

    def sent(self, frame: bytes | memoryview) -> None:
        """One frame went out on a tick: it fills the next 20 ms of the left channel."""
        if self.closed:
            return
        position = self._sent
        offset = position % BLOCK
        self._block(position // BLOCK)[0][offset : offset + FRAME_SAMPLES] = frame
        self._sent = position + FRAME_SAMPLES
        if self._sent % BLOCK == 0:
            self._write_through(self._sent // BLOCK - HELD_BLOCKS)

    def received(self, ssrc: int, timestamp: int, payload: memoryview) -> None:
        """A packet of the far end's audio, placed by its timestamp on the right channel."""
        if self.closed:
            return
        if ssrc != self._ssrc:
            self._anchor(ssrc, timestamp)
        delta = (timestamp - self._anchor_ts) & _U32
        if delta > _U32 >> 1:
            delta -= _U32 + 1  # a packet from before the anchor (reordered)
        position = self._anchor_pos + delta
        if position > self._sent + MAX_AHEAD:
            self._anchor(ssrc, timestamp)
            position = self._anchor_pos
        data = payload[:MAX_PAYLOAD]
        end = min(position + len(data), self._sent + MAX_AHEAD)
        start = max(position, self._written)  # what is on disk already stays as it is
        while start < end:
            index, offset = divmod(start, BLOCK)
            count = min(end - start, BLOCK - offset)
            source = start - position
            self._block(index)[1][offset : offset + count] = data[source : source + count]
            start += count

    def _anchor(self, ssrc: int, timestamp: int) -> None:
        """A new source (or a restart of its timestamps) begins beside the frame we sent
        last: what arrives between two ticks was spoken while that frame played."""
        self._ssrc = ssrc
        self._anchor_ts = timestamp
        self._anchor_pos = max(self._sent - FRAME_SAMPLES, 0)

    def _write_through(self, end_block: int) -> None:
        """Write every held block before `end_block` and free it."""
        while self._written // BLOCK < end_block:
            index = self._written // BLOCK
            left, right = self._blocks.pop(index, (self._silence_block, self._silence_block))
            self._write(left, right)
            self._written += len(left)

    def _write(self, left: bytes | bytearray, right: bytes | bytearray) -> None:
        if self.failed:
            return
        out = bytearray(len(left) * CHANNELS * SAMPLE_BYTES)
        out[0::4] = left.translate(self._low)
        out[1::4] = left.translate(self._high)
        out[2::4] = right.translate(self._low)
        out[3::4] = right.translate(self._high)
        try:
            self._file.write(out)
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.failed = True
        logger.error(
            "recording stopped: %s",
            exc,
            extra={"event": "rtp.recording_failed", "call_uuid": self.label},
        )

    def close(self, ended_at: float | None = None) -> None:
        """Write what is held and fix the header's sizes. With `ended_at`, the recording
        lasts until then: the time after our last frame (our BYE's round trip, say) is
        silence on the left and what still came on the right."""
        if self.closed:
            return
        self.closed = True
        if ended_at is not None and self._started_at is not None:
            self._sent = max(self._sent, round((ended_at - self._started_at) * RATE))
        whole_blocks = self._sent // BLOCK
        self._write_through(whole_blocks)
        tail = self._sent - whole_blocks * BLOCK
        if tail and not self.failed:
            left, right = self._blocks.pop(whole_blocks, (self._silence_block, self._silence_block))
            self._write(left[:tail], right[:tail])
            self._written += tail
        self._blocks.clear()
        try:
            if not self.failed:
                self._file.seek(0)
                self._file.write(wav_header(self._sent * CHANNELS * SAMPLE_BYTES))
            self._file.close()
        except OSError as exc:
            self._fail(exc)
        if self.failed:
            self.path.unlink(missing_ok=True)
