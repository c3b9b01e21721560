"""One call's RTP session: a UDP socket, the send position in the shared audio, and the
receive side (statistics, RFC 4733 keys, the time of the last packet).

Streams do no timing of their own. `MediaClock` calls `tick()` every 20 ms and
`check_rtp_timeout()` a few times a second; the receive side runs when `SocketReaders`
finds the socket readable. Frames are cut once per voice (`split_frames`) as `memoryview`
slices of the audio encoded at upload and handed to `sendmsg` with the 12-byte header as a
separate buffer, so no call copies or slices the audio: `tick()` is on the path of every
packet of every call and does only what a packet needs.

Media and keys are taken only from the far end the SDP names (docs/telephony.md, "Whose
RTP is accepted"): the first packet from the SDP's address latches its source (address
and port, so a far end behind NAT that sends from another port still works), and from
then on any other source is dropped and counted in `rejected`. On the receive path that
costs one comparison of the source address tuple `recvfrom_into` returns.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import random
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ivrcast.logthrottle import LogThrottle
from ivrcast.rtp.dtmf import DtmfReceiver
from ivrcast.rtp.errors import RtpError, RtpParseError
from ivrcast.rtp.g711 import FRAME_SAMPLES
from ivrcast.rtp.packet import HEADER, HEADER_SIZE, RTP_VERSION
from ivrcast.rtp.readers import SocketReaders
from ivrcast.rtp.stats import ReceiveStats

logger = logging.getLogger(__name__)

RECV_SIZE = 2048
FIRST_BYTE = RTP_VERSION << 6  # RFC 3550 §5.1: no padding, extension or CSRC
PORT_ATTEMPTS = 50
REJECT_LOG_INTERVAL = 10.0  # seconds between two "dropped RTP" lines of one call

Frame = bytes | memoryview


class MediaTap(Protocol):
    """Sees a call's audio both ways (a recording, a detector). A stream without one pays
    a None check per packet, nothing more. `payload` is a view of the stream's reused
    buffer: copy what is kept."""

    def sent(self, frame: Frame) -> None: ...

    def received(self, ssrc: int, timestamp: int, payload: memoryview) -> None: ...


class TeeTap:
    """Several taps on one stream (a recording and a detector)."""

    def __init__(self, *taps: MediaTap) -> None:
        self._taps = taps

    def sent(self, frame: Frame) -> None:
        for tap in self._taps:
            tap.sent(frame)

    def received(self, ssrc: int, timestamp: int, payload: memoryview) -> None:
        for tap in self._taps:
            tap.received(ssrc, timestamp, payload)


def split_frames(audio: bytes, silence: bytes) -> tuple[Frame, ...]:
    """`audio` as 20 ms frames: views into it, the last one padded with `silence`.

    Done once per voice and codec; every call playing the voice shares the result."""
    view = memoryview(audio)
    frames: list[Frame] = [
        view[start : start + FRAME_SAMPLES] for start in range(0, len(audio), FRAME_SAMPLES)
    ]
    if frames and len(frames[-1]) < FRAME_SAMPLES:
        frames[-1] = bytes(frames[-1]) + silence[len(frames[-1]) :]
    return tuple(frames)


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
        readers: SocketReaders,
        label: str = "",
        monotonic: Callable[[], float],
    ) -> None:
        self.label = label  # the call's id, for logs
        self._sock = sock
        self._monotonic = monotonic
        self._readers = readers
        self._fd = sock.fileno()
        # One buffer per stream, reused for every packet: no allocation per packet.
        self._buffer = bytearray(RECV_SIZE)
        self._view = memoryview(self._buffer)
        readers.add(self._fd, self._read_one)
        self.local_address: tuple[str, int] = sock.getsockname()[:2]
        # Send side, set by start().
        self._remote: tuple[str, int] | None = None
        self._frames: Sequence[Frame] = ()
        self._held_frames: Sequence[Frame] | None = None  # the voice, while held back
        self._next_frame = 0
        self._silence = b""
        self._header = bytearray(HEADER_SIZE)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self.ssrc = random.getrandbits(32)
        self._payload_type = 0
        # The second header byte of the next packet: the marker bit is set on the first.
        self._second_byte = 0
        self.packets_sent = 0
        self.send_errors = 0
        # Receive side.
        self.stats = ReceiveStats()
        self._dtmf = DtmfReceiver()
        self._dtmf_payload_type: int | None = None
        self._started = False
        # Whose packets count (see the module docstring): the SDP's address, then the
        # source latched from the first packet that came from it.
        self._expected_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
        self._source: tuple[Any, ...] | None = None
        self.rejected = 0  # packets dropped because another source sent them
        self._reject_log: LogThrottle | None = None
        self.last_received: float = 0.0
        self._received_at_last_check = 0
        self._no_rtp_timeout: float | None = None
        self._timed_out = False
        self.on_audio_done: Callable[[], None] | None = None
        self.on_key: Callable[[str], None] | None = None
        self.on_rtp_timeout: Callable[[], None] | None = None
        self.tap: MediaTap | None = None
        self.closed = False

    def start(
        self,
        remote: tuple[str, int],
        *,
        frames: Sequence[Frame],
        silence: bytes,
        payload_type: int,
        dtmf_payload_type: int | None,
        no_rtp_timeout: float | None,
        hold_voice: bool = False,
    ) -> None:
        """Begin sending `frames` (from `split_frames`, then `silence`) to `remote` from the
        next tick; take packets only from `remote`'s address. With `hold_voice`, send
        silence until `release_voice()` (answering-machine detection listens first)."""
        self._expect(remote)
        if hold_voice:
            self._held_frames, frames = frames, ()
        self._frames = frames
        self._silence = silence
        self._payload_type = payload_type
        self._second_byte = payload_type | 0x80  # RFC 3550 §5.1 marker: talkspurt start
        self._dtmf_payload_type = dtmf_payload_type
        self._no_rtp_timeout = no_rtp_timeout
        self.last_received = self._monotonic()
        self._started = True

    def release_voice(self) -> None:
        """Play the held voice from its start at the next tick."""
        if self._held_frames is not None:
            self._frames, self._held_frames = self._held_frames, None
            self._next_frame = 0

    def set_remote(self, remote: tuple[str, int]) -> None:
        """The far end moved its media (a re-INVITE): send there, and latch anew on the
        first packet from its address."""
        self._expect(remote)

    def watch_rtp(self, timeout: float | None) -> None:
        """Restart the no-RTP timer with `timeout` (None: off), counted from now, so a
        call coming off hold is not ended for the silence of its hold."""
        self._no_rtp_timeout = timeout
        self.last_received = self._monotonic()
        self._timed_out = False

    def _expect(self, remote: tuple[str, int]) -> None:
        self._remote = remote
        self._source = None
        try:
            self._expected_ip = _comparable(ipaddress.ip_address(remote[0]))
        except ValueError:
            # RFC 4566 allows a host name in c=; with no address to hold packets to,
            # the first packet's source is latched, whatever its address.
            self._expected_ip = None

    @property
    def source(self) -> tuple[Any, ...] | None:
        """The latched source of the far end's packets, once one has arrived."""
        return self._source

    def tick(self) -> None:
        """Send the next 20 ms frame; called by `MediaClock` only."""
        remote = self._remote
        if remote is None:
            return
        index = self._next_frame
        frames = self._frames
        if index < len(frames):
            frame = frames[index]
            self._next_frame = index + 1
        else:
            frame = self._silence
        seq = self._seq
        ts = self._ts
        HEADER.pack_into(self._header, 0, FIRST_BYTE, self._second_byte, seq, ts, self.ssrc)
        self._second_byte = self._payload_type
        self._seq = (seq + 1) & 0xFFFF
        self._ts = (ts + FRAME_SAMPLES) & 0xFFFFFFFF
        try:
            self._sock.sendmsg((self._header, frame), (), 0, remote)
            self.packets_sent += 1
        except OSError:
            # UDP: a full buffer or an ICMP error from an earlier packet. RTP tolerates
            # loss; the count shows in the outcome and the no-RTP timer ends dead calls.
            self.send_errors += 1
        tap = self.tap
        if tap is not None:
            tap.sent(frame)
        if index + 1 == len(frames) and self.on_audio_done is not None:
            self.on_audio_done()  # the last frame of the voice has just left

    @property
    def timestamp(self) -> int:
        """The RTP timestamp the next frame will carry."""
        return self._ts

    def send_event(self, payload: bytes, *, timestamp: int, marker: bool) -> None:
        """Send one RFC 4733 telephone-event packet in place of a frame (the caller
        ticks it, see `dtmf_send.KeyPress`); off the audio path of `tick()`."""
        remote = self._remote
        if remote is None or self._dtmf_payload_type is None:
            return
        second = self._dtmf_payload_type | (0x80 if marker else 0)
        header = HEADER.pack(FIRST_BYTE, second, self._seq, timestamp, self.ssrc)
        self._seq = (self._seq + 1) & 0xFFFF
        try:
            self._sock.sendmsg((header, payload), (), 0, remote)
            self.packets_sent += 1
        except OSError:
            self.send_errors += 1

    def skip(self, samples: int) -> None:
        """Move the audio timestamp on by `samples` (the span of an event sent instead
        of frames, RFC 4733 §2.5.1.5)."""
        self._ts = (self._ts + samples) & 0xFFFFFFFF

    def check_rtp_timeout(self, now: float) -> None:
        """Has the far end sent nothing for `no_rtp_timeout` seconds? Called by
        `MediaClock` a few times a second."""
        received = self.stats.packets_received
        if received != self._received_at_last_check:
            self._received_at_last_check = received
            self.last_received = now
        timeout = self._no_rtp_timeout
        if timeout is not None and not self._timed_out and now - self.last_received > timeout:
            self._timed_out = True
            if self.on_rtp_timeout is not None:
                self.on_rtp_timeout()

    def _read_one(self) -> bool:
        """Read and account one datagram (see `SocketReaders`); False if none waited."""
        try:
            size, source = self._sock.recvfrom_into(self._buffer)
        except BlockingIOError:
            return False
        except OSError:
            return True  # an ICMP error for an earlier send, not a packet
        # Packets that arrive before `start()` (early media, a 183's stream) are read and
        # dropped so that the kernel buffer holds no stale audio when the call is answered.
        if not self._started or size < HEADER_SIZE:
            return True
        if source != self._source and not self._latch(source):
            return True
        first, second, seq, ts, ssrc = HEADER.unpack_from(self._buffer)
        if first >> 6 != RTP_VERSION:
            return True
        # The time of the last packet is taken at the next `check_rtp_timeout`, which is
        # precise enough for a timeout of seconds and keeps a clock read off this path.
        self.stats.add(ssrc, seq)
        payload_type = second & 0x7F
        if payload_type == self._dtmf_payload_type:
            self._on_telephone_event(first, ts, bytes(self._view[:size]))
        elif self.tap is not None and payload_type == self._payload_type:
            self.tap.received(ssrc, ts, self._view[HEADER_SIZE + 4 * (first & 0x0F) : size])
        return True

    def _latch(self, source: tuple[Any, ...]) -> bool:
        """A packet from a source other than the latched one: latch it if nothing is
        latched and it comes from the SDP's address; otherwise count and drop it."""
        if self._source is None:
            expected = self._expected_ip
            if expected is None or _comparable(ipaddress.ip_address(source[0])) == expected:
                self._source = source
                if source[1] != self._remote_port():
                    logger.info(
                        "RTP from %s:%s, not the SDP's port %s: latched (NAT)",
                        source[0],
                        source[1],
                        self._remote_port(),
                        extra={"event": "rtp.latched_other_port", "call_uuid": self.label},
                    )
                return True
        self.rejected += 1
        if self._reject_log is None:
            self._reject_log = LogThrottle(REJECT_LOG_INTERVAL, self._monotonic, max_keys=1)
        suppressed = self._reject_log.admit(self.label)
        if suppressed is not None:
            self._log_rejected(source, suppressed + 1)
        return False

    def _remote_port(self) -> int | None:
        return None if self._remote is None else self._remote[1]

    def _log_rejected(self, source: tuple[Any, ...] | None, count: int) -> None:
        """`count` packets dropped, the last from `source` (None: a summary at close)."""
        latched = self._source
        logger.warning(
            "dropped %d RTP packet(s) not from the far end %s%s",
            count,
            f"{latched[0]}:{latched[1]}" if latched else f"(expected from {self._expected_ip})",
            "" if source is None else f", the last from {source[0]}:{source[1]}",
            extra={"event": "rtp.rejected", "call_uuid": self.label, "rejected": count},
        )

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
        if self._reject_log is not None:
            for _, count in self._reject_log.drain():
                self._log_rejected(None, count)
        self._remote = None
        self._readers.remove(self._fd)
        self._sock.close()


def _comparable(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """`ip`, with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket
    reports IPv4 peers) as the IPv4 address it stands for."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
