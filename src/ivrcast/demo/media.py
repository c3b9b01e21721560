"""The demo carrier's RTP: a tone it plays, RFC 4733 key presses it sends, packets it counts.

One `MediaTicker` task sends a 20 ms frame to every answered demo call, on absolute
times like the engine's media clock; each call has its own UDP socket and counts what
the caller sends, so both directions carry real RTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket

from ivrcast.rtp.dtmf import DTMF_KEYS, TelephoneEvent
from ivrcast.rtp.g711 import FRAME_SAMPLES, encode_alaw, encode_ulaw
from ivrcast.rtp.packet import HEADER, HEADER_SIZE, RTP_VERSION
from ivrcast.rtp.stream import open_rtp_socket

PTIME = 0.020
# RFC 4733 §2.5.1: a key held for 100 ms (5 packets of growing duration), then the end
# packet sent three times with the same duration.
KEY_PACKETS = 5
END_REPEATS = 3


def _tone(seconds: float) -> list[int]:
    """425 Hz, one second on and one off: the sound of a line that is there."""
    samples = []
    for n in range(int(seconds * 8000)):
        on = (n // 8000) % 2 == 0
        samples.append(int(6000 * math.sin(2 * math.pi * 425 * n / 8000)) if on else 0)
    return samples


_TONE = _tone(4.0)
AUDIO = {"PCMU": encode_ulaw(_TONE), "PCMA": encode_alaw(_TONE)}


class DemoMedia:
    """One call's RTP session."""

    def __init__(self, host: str) -> None:
        self._sock: socket.socket = open_rtp_socket(host)
        self.local_port: int = self._sock.getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._on_readable)
        self.remote: tuple[str, int] | None = None
        self.codec = "PCMU"
        self.payload_type = 0
        self.dtmf_payload_type: int | None = None
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._ssrc = random.getrandbits(32)
        self._pos = 0
        self._first = True
        self._key: tuple[int, int, int] | None = None  # event, start timestamp, packets sent
        self.packets_sent = 0
        self.packets_received = 0
        self.closed = False

    def start(
        self, remote: tuple[str, int], codec: str, payload_type: int, dtmf: int | None
    ) -> None:
        self.remote = remote
        self.codec = codec
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf

    def press(self, key: str) -> bool:
        """Send `key` as an RFC 4733 event over the next frames, in place of audio.
        False when the caller offered no telephone-event."""
        if self.dtmf_payload_type is None:
            return False
        self._key = (DTMF_KEYS.index(key), self._ts, 0)
        return True

    def tick(self) -> None:
        if self.remote is None or self.closed:
            return
        if self._key is not None:
            self._send_key_packet()
            return
        audio = AUDIO[self.codec]
        frame = audio[self._pos : self._pos + FRAME_SAMPLES]
        self._pos = (self._pos + FRAME_SAMPLES) % len(audio)
        self._send(self.payload_type, frame, self._ts, marker=self._first)
        self._first = False
        self._ts = (self._ts + FRAME_SAMPLES) & 0xFFFFFFFF

    def _send_key_packet(self) -> None:
        assert self._key is not None
        assert self.dtmf_payload_type is not None
        event, start, sent = self._key
        # RFC 4733 §2.5.1.3: every packet of an event carries its start timestamp and the
        # duration so far; the first has the marker bit.
        end = sent >= KEY_PACKETS
        duration = FRAME_SAMPLES * min(sent + 1, KEY_PACKETS)
        payload = bytes(TelephoneEvent(event=event, end=end, volume=10, duration=duration))
        self._send(self.dtmf_payload_type, payload, start, marker=sent == 0)
        sent += 1
        if sent >= KEY_PACKETS + END_REPEATS:
            self._key = None
            # Audio resumes after the event's span (RFC 4733 §2.5.1.5).
            self._ts = (start + FRAME_SAMPLES * sent) & 0xFFFFFFFF
        else:
            self._key = (event, start, sent)

    def _send(self, payload_type: int, payload: bytes, timestamp: int, *, marker: bool) -> None:
        assert self.remote is not None
        second = payload_type | (0x80 if marker else 0)
        header = HEADER.pack(RTP_VERSION << 6, second, self._seq, timestamp, self._ssrc)
        self._seq = (self._seq + 1) & 0xFFFF
        with contextlib.suppress(OSError):
            self._sock.sendto(header + payload, self.remote)
            self.packets_sent += 1

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(2048)
        except OSError:
            return
        if len(data) >= HEADER_SIZE and data[0] >> 6 == RTP_VERSION:
            self.packets_received += 1

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()


class MediaTicker:
    """The one task that paces every demo call's audio."""

    def __init__(self) -> None:
        self.media: set[DemoMedia] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="demo-media")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        scheduled = loop.time()
        while True:
            scheduled += PTIME
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                scheduled = loop.time()  # far behind: resynchronise rather than burst
            for media in tuple(self.media):
                media.tick()
