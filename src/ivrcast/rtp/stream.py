"""One call's RTP session: a UDP socket, the send position in the shared audio, and the
receive side (statistics, RFC 4733 keys, the time of the last packet).

Streams do no timing of their own. `MediaClock` calls `tick()` every 20 ms; the receive
side runs from the event loop's reader callback. Frames are `memoryview` slices of the
audio encoded once at upload, handed to `sendmsg` with the 12-byte header as a separate
buffer, so no call copies the audio.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import struct
from collections.abc import Callable

from ivrcast.rtp.dtmf import DtmfReceiver
from ivrcast.rtp.errors import RtpError, RtpParseError
from ivrcast.rtp.g711 import FRAME_SAMPLES
from ivrcast.rtp.packet import HEADER, HEADER_SIZE, RTP_VERSION
from ivrcast.rtp.stats import ReceiveStats

logger = logging.getLogger(__name__)

RECV_SIZE = 2048
# Packets that arrive before `start()` (early media, a 183's stream) are read and dropped
# so that the kernel buffer holds no stale audio when the call is answered.
PORT_ATTEMPTS = 50


def open_rtp_socket(host: str, port_range: tuple[int, int] | None = None) -> socket.socket:
    """A non-blocking UDP socket on `host`, on an even port from `port_range` (RFC 3550
    §11 keeps the odd port for RTCP) or on an ephemeral port when no range is given."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if port_range is None:
            sock.bind((host, 0))
            return sock
        low, high = port_range
        for _ in range(PORT_ATTEMPTS):
            port = random.randrange(low + (low % 2), high, 2)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            return sock
    except OSError as exc:
        sock.close()
        raise RtpError(f"cannot open an RTP socket on {host}: {exc}") from exc
    sock.close()
    raise RtpError(f"no free RTP port on {host} in {port_range[0]}-{port_range[1]}")


class RtpStream:
    def __init__(
        self,
        sock: socket.socket,
        *,
        label: str = "",
        monotonic: Callable[[], float],
    ) -> None:
        self.label = label  # the call's id, for logs
        self._sock = sock
        self._monotonic = monotonic
        self._loop = asyncio.get_running_loop()
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._on_readable)
        self.local_address: tuple[str, int] = sock.getsockname()[:2]
        # Send side, set by start().
        self._remote: tuple[str, int] | None = None
        self._audio = memoryview(b"")
        self._silence = b""
        self._pos = 0
        self._header = bytearray(HEADER_SIZE)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self.ssrc = random.getrandbits(32)
        self._first = True
        self._payload_type = 0
        self._audio_done = False
        self.packets_sent = 0
        self.send_errors = 0
        # Receive side.
        self.stats = ReceiveStats()
        self._dtmf = DtmfReceiver()
        self._dtmf_payload_type: int | None = None
        self._started = False
        self.last_received: float = 0.0
        self._received_at_last_tick = 0
        self._no_rtp_timeout: float | None = None
        self._timed_out = False
        self.on_audio_done: Callable[[], None] | None = None
        self.on_key: Callable[[str], None] | None = None
        self.on_rtp_timeout: Callable[[], None] | None = None
        self.closed = False

    def start(
        self,
        remote: tuple[str, int],
        *,
        audio: memoryview,
        silence: bytes,
        payload_type: int,
        dtmf_payload_type: int | None,
        no_rtp_timeout: float | None,
    ) -> None:
        """Begin sending `audio` (then `silence` frames) to `remote` from the next tick."""
        self._remote = remote
        self._audio = audio
        self._silence = silence
        self._payload_type = payload_type
        self._dtmf_payload_type = dtmf_payload_type
        self._no_rtp_timeout = no_rtp_timeout
        self.last_received = self._monotonic()
        self._started = True
        if len(audio) == 0:
            self._audio_done = True

    def set_remote(self, remote: tuple[str, int]) -> None:
        """The far end moved its media (a re-INVITE)."""
        self._remote = remote

    @property
    def audio_done(self) -> bool:
        return self._audio_done

    def tick(self, now: float) -> None:
        """Send the next 20 ms frame; called by `MediaClock` only."""
        remote = self._remote
        if remote is None or self.closed:
            return
        audio = self._audio
        pos = self._pos
        if pos < len(audio):
            frame: memoryview | bytes = audio[pos : pos + FRAME_SAMPLES]
            if len(frame) < FRAME_SAMPLES:
                # The last frame is short: pad it (one 160-byte copy per call).
                frame = bytes(frame) + self._silence[len(frame) :]
            self._pos = pos + FRAME_SAMPLES
        else:
            frame = self._silence
        second = self._payload_type
        if self._first:
            second |= 0x80  # RFC 3550 §5.1 marker: the start of a talkspurt
            self._first = False
        HEADER.pack_into(self._header, 0, RTP_VERSION << 6, second, self._seq, self._ts, self.ssrc)
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + FRAME_SAMPLES) & 0xFFFFFFFF
        try:
            self._sock.sendmsg((self._header, frame), (), 0, remote)
            self.packets_sent += 1
        except OSError:
            # UDP: a full buffer or an ICMP error from an earlier packet. RTP tolerates
            # loss; the count shows in the outcome and the no-RTP timer ends dead calls.
            self.send_errors += 1
        if not self._audio_done and self._pos >= len(audio):
            self._audio_done = True
            if self.on_audio_done is not None:
                self.on_audio_done()
        received = self.stats.packets_received
        if received != self._received_at_last_tick:
            self._received_at_last_tick = received
            self.last_received = now
        timeout = self._no_rtp_timeout
        if timeout is not None and not self._timed_out and now - self.last_received > timeout:
            self._timed_out = True
            if self.on_rtp_timeout is not None:
                self.on_rtp_timeout()

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(RECV_SIZE)
        except OSError:
            return
        if not self._started or len(data) < HEADER_SIZE:
            return
        first, second, seq, ts, ssrc = HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            return
        # The time of the last packet is taken at the next tick (see `tick`), which is
        # precise enough for a timeout of seconds and keeps a clock read off this path.
        self.stats.add(ssrc, seq)
        if (second & 0x7F) == self._dtmf_payload_type:
            self._on_telephone_event(first, ts, data)

    def _on_telephone_event(self, first: int, timestamp: int, data: bytes) -> None:
        offset = HEADER_SIZE + 4 * (first & 0x0F)
        if first & 0x10 and len(data) >= offset + 4:
            offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
        try:
            key = self._dtmf.on_packet(timestamp, data[offset:])
        except RtpParseError:
            logger.debug(
                "bad telephone-event", extra={"event": "rtp.bad_dtmf", "call_uuid": self.label}
            )
            return
        if key is not None and self.on_key is not None:
            self.on_key(key)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self._fd)
        self._sock.close()
