"""RTP streams on the native media pump (`_pump.c`, docs/media.md).

`PumpStream` has the surface of `RtpStream` and keeps its state in a slot of the C pump;
`StreamPump` owns the pump and hands what it reports to the streams' callbacks and taps.
In the engine the pump's own media thread ticks the streams and reads their sockets, off
the event loop, and the loop is woken only for events; per packet, Python runs only for
what it has to act on: a voice that ended, a key, a rejected source, and the audio of a
stream with a tap (a recording, a detector).

The rules (latching, statistics, RFC 4733 de-duplication, the no-RTP timer) are those of
`stream.py`, which stays the reference and the fallback when the extension is missing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections.abc import Callable, Sequence
from typing import Any

from ivrcast.logthrottle import LogThrottle
from ivrcast.rtp.stream import REJECT_LOG_INTERVAL, Frame, MediaTap

try:
    from ivrcast.rtp import _pump
except ImportError:  # built without a compiler: `media.py` falls back to Python streams
    NATIVE = False
else:
    NATIVE = True

logger = logging.getLogger(__name__)

# How often, at most, a warning says the media thread dropped events because the event
# loop did not take them (docs/media.md): once a loop is that far behind, a line per
# batch would only make it worse.
DROPPED_LOG_INTERVAL = 10.0


class PumpStats:
    """`ReceiveStats`' read side, read from the pump."""

    def __init__(self, stream: PumpStream) -> None:
        self._stream = stream

    @property
    def packets_received(self) -> int:
        return self._stream.counters()[2]

    @property
    def packets_expected(self) -> int:
        return self._stream.counters()[3]

    @property
    def packets_lost(self) -> int:
        """Expected minus received, never below 0 (duplicates can make it negative)."""
        _, _, received, expected, _ = self._stream.counters()
        return max(expected - received, 0)


class PumpStream:
    """One call's RTP session on a slot of `pump` (see `RtpStream` for each method)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        pump: StreamPump,
        label: str = "",
        monotonic: Callable[[], float],
    ) -> None:
        self.label = label
        self.pump = pump
        self._native = pump.native
        self._sock = sock
        self._monotonic = monotonic
        self.local_address: tuple[str, int] = sock.getsockname()[:2]
        self.ssrc = random.getrandbits(32)
        self.slot = self._native.add(
            sock.fileno(), self, self.ssrc, random.getrandbits(16), random.getrandbits(32)
        )
        pump.attach(self)
        self._remote: tuple[str, int] | None = None
        self._expected_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
        self._tap: MediaTap | None = None
        self._reject_log: LogThrottle | None = None
        self._final: tuple[int, int, int, int, int] | None = None  # counters at close
        self.stats = PumpStats(self)
        self.on_audio_done: Callable[[], None] | None = None
        self.on_key: Callable[[str], None] | None = None
        self.on_rtp_timeout: Callable[[], None] | None = None
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
        if self.closed:
            return
        self._expect(remote)
        self._native.start(
            self.slot,
            tuple(frames),
            silence,
            payload_type,
            -1 if dtmf_payload_type is None else dtmf_payload_type,
            hold_voice,
        )
        self.watch_rtp(no_rtp_timeout)

    def release_voice(self) -> None:
        if not self.closed:
            self._native.release_voice(self.slot)

    def set_remote(self, remote: tuple[str, int]) -> None:
        if not self.closed:
            self._expect(remote)

    def watch_rtp(self, timeout: float | None) -> None:
        if not self.closed:
            self._native.watch(self.slot, -1.0 if timeout is None else timeout, self._monotonic())

    def _expect(self, remote: tuple[str, int]) -> None:
        self._remote = remote
        try:
            ip = ipaddress.ip_address(remote[0])
        except ValueError:
            # A host name in c= (RFC 4566): no address to hold packets to, so the first
            # packet's source is latched, whatever its address. The pump does not resolve
            # it (that would block the loop); its sends count as errors.
            self._expected_ip = None
            self._native.set_remote(self.slot, b"", remote[1])
            return
        self._expected_ip = ip
        self._native.set_remote(self.slot, ip.packed, remote[1])

    @property
    def source(self) -> tuple[Any, ...] | None:
        return None if self.closed else self._native.source(self.slot)

    @property
    def tap(self) -> MediaTap | None:
        return self._tap

    @tap.setter
    def tap(self, tap: MediaTap | None) -> None:
        self._tap = tap
        if not self.closed:
            self._native.set_tapped(self.slot, tap is not None)

    def counters(self) -> tuple[int, int, int, int, int]:
        """(sent, send errors, received, expected, rejected), kept after `close()`."""
        if self.closed:
            return self._final or (0, 0, 0, 0, 0)
        return self._native.counters(self.slot)

    @property
    def packets_sent(self) -> int:
        return self.counters()[0]

    @property
    def send_errors(self) -> int:
        return self.counters()[1]

    @property
    def rejected(self) -> int:
        return self.counters()[4]

    @property
    def timestamp(self) -> int:
        return self._native.timestamp(self.slot)

    def set_ticking(self, on: bool) -> None:
        """On the media clock or off it (`MediaClock.add`/`remove`)."""
        if not self.closed:
            self._native.set_ticking(self.slot, on)

    def tick(self) -> None:
        """Send the next frame of this stream alone (the clock ticks the whole pump)."""
        if not self.closed:
            self.pump.deliver(self._native.tick_one(self.slot))

    def send_event(self, payload: bytes, *, timestamp: int, marker: bool) -> None:
        if not self.closed:
            self._native.send_event(self.slot, payload, timestamp, marker)

    def skip(self, samples: int) -> None:
        if not self.closed:
            self._native.skip(self.slot, samples)

    def check_rtp_timeout(self, now: float) -> None:
        if not self.closed and self._native.check_timeout(self.slot, now):
            self.timed_out()

    def timed_out(self) -> None:
        if self.on_rtp_timeout is not None:
            self.on_rtp_timeout()

    def rejected_from(self, source: tuple[Any, ...]) -> None:
        """The pump dropped a packet from `source`: a log line, throttled per call."""
        if self._reject_log is None:
            self._reject_log = LogThrottle(REJECT_LOG_INTERVAL, self._monotonic, max_keys=1)
        suppressed = self._reject_log.admit(self.label)
        if suppressed is not None:
            self._log_rejected(source, suppressed + 1)

    def latched_other_port(self, source: tuple[Any, ...]) -> None:
        logger.info(
            "RTP from %s:%s, not the SDP's port %s: latched (NAT)",
            source[0],
            source[1],
            None if self._remote is None else self._remote[1],
            extra={"event": "rtp.latched_other_port", "call_uuid": self.label},
        )

    def _log_rejected(self, source: tuple[Any, ...] | None, count: int) -> None:
        latched = self.source
        logger.warning(
            "dropped %d RTP packet(s) not from the far end %s%s",
            count,
            f"{latched[0]}:{latched[1]}" if latched else f"(expected from {self._expected_ip})",
            "" if source is None else f", the last from {source[0]}:{source[1]}",
            extra={"event": "rtp.rejected", "call_uuid": self.label, "rejected": count},
        )

    def close(self) -> None:
        if self.closed:
            return
        if self._reject_log is not None:
            for _, count in self._reject_log.drain():
                self._log_rejected(None, count)
        self.closed = True
        self._tap = None
        if not self.pump.closed:  # a closed pump has let go of every slot already
            self._final = self._native.counters(self.slot)
            self._native.remove(self.slot)
        self.pump.detach(self)
        self._sock.close()


class StreamPump:
    """The native pump of many `PumpStream`s.

    `threaded` (the engine's mode): the pump's media thread ticks the streams on the
    media clock and reads their sockets, off the event loop and the GIL; the loop is
    woken only when the thread has events for Python. Otherwise Python drives it: the
    `MediaClock` calls `tick()` and the loop calls `read_ready()` whenever the pump's
    epoll set is readable (deterministic, for the unit tests)."""

    label = "media-pump"  # for the media clock's logs

    def __init__(
        self, *, interval: float, threaded: bool = True, queue_records: int | None = None
    ) -> None:
        """`interval`: the media clock's, how often each socket is expected to receive
        a datagram. `queue_records`: the bound of the thread's queue of events, if not
        the pump's own (a test fills it)."""
        self._loop = asyncio.get_running_loop()
        self._interval = interval
        self._last_read = self._loop.time()
        self.native = _pump.Pump()
        self.threaded = threaded
        self._streams = 0
        self.closed = False
        # Events the thread dropped at its queue's bounds, by kind, as last logged.
        self._dropped: tuple[int, ...] = self.native.dropped()
        self._dropped_logged_at = -DROPPED_LOG_INTERVAL
        if threaded:
            if queue_records is None:
                self.native.run(interval)
            else:
                self.native.run(interval, queue_records)
            self._fd = self.native.events_fd()
            self._loop.add_reader(self._fd, self.take_events)
        else:
            self._fd = self.native.fileno()
            self._loop.add_reader(self._fd, self.read_ready)

    def stream(
        self, sock: socket.socket, *, label: str = "", monotonic: Callable[[], float]
    ) -> PumpStream:
        return PumpStream(sock, pump=self, label=label, monotonic=monotonic)

    def attach(self, stream: PumpStream) -> None:
        self._streams += 1

    def detach(self, stream: PumpStream) -> None:
        self._streams -= 1

    def __len__(self) -> int:
        return self._streams

    def close(self) -> None:
        """Stop and join the media thread, then let go of every slot."""
        if self.closed:
            return
        self.closed = True
        if not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self.native.close()

    @property
    def late_ticks(self) -> int:
        """The media thread's ticks a whole interval late (0 when Python ticks)."""
        return 0 if self.closed else self.native.late_ticks()

    def take_events(self) -> None:
        """What the media thread recorded since the last take, for the callbacks."""
        self.deliver(self.native.take_events())
        self._check_dropped()

    def _check_dropped(self) -> None:
        dropped = self.native.dropped()
        if dropped == self._dropped:
            return
        now = self._loop.time()
        if now - self._dropped_logged_at < DROPPED_LOG_INTERVAL:
            return
        since = [count - before for count, before in zip(dropped, self._dropped, strict=True)]
        logger.warning(
            "the event loop fell behind the media thread: %d event(s) dropped, %d of them "
            "tap audio (frames sent %d, received %d)",
            sum(since),
            since[_pump.SENT] + since[_pump.AUDIO],
            since[_pump.SENT],
            since[_pump.AUDIO],
            extra={"event": "rtp.pump_events_dropped", "dropped": sum(dropped)},
        )
        self._dropped = dropped
        self._dropped_logged_at = now

    def read_ready(self) -> bool:
        """Read every socket with datagrams waiting; False if none had any. As many
        datagrams per socket as intervals went by since the last read (see `readers.py`):
        one when the loop is on time, the cheapest read. With the media thread running,
        what it read before comes first, so after this every datagram that was waiting
        has been handed to its stream."""
        now = self._loop.time()
        reads = 1 + int((now - self._last_read) / self._interval)
        self._last_read = now
        datagrams, events = self.native.drain(reads)
        self.deliver(events)
        return datagrams > 0

    def tick(self) -> None:
        """Send one frame on every stream on the media clock (the media thread does it
        when it runs)."""
        if not self.threaded:
            self.deliver(self.native.tick())

    def check_rtp_timeout(self, now: float) -> None:
        for stream in self.native.check_timeouts(now):
            self._guarded(stream, stream.timed_out)

    def deliver(self, events: list[_pump.Event]) -> None:
        for kind, stream, value in events:
            if stream.closed:
                continue  # an earlier event of the batch ended its call
            if kind == _pump.SENT:
                tap = stream.tap
                if tap is not None:
                    self._guarded(stream, tap.sent, value)
            elif kind == _pump.VOICE_DONE:
                if stream.on_audio_done is not None:
                    self._guarded(stream, stream.on_audio_done)
            elif kind == _pump.KEY:
                if stream.on_key is not None:
                    self._guarded(stream, stream.on_key, value)
            elif kind == _pump.AUDIO:
                tap = stream.tap
                if tap is not None:
                    ssrc, timestamp, payload = value
                    self._guarded(stream, tap.received, ssrc, timestamp, memoryview(payload))
            elif kind == _pump.REJECTED:
                stream.rejected_from(value)
            elif kind == _pump.LATCHED:
                stream.latched_other_port(value)

    def _guarded(self, stream: PumpStream, callback: Callable[..., object], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            # One broken stream must not stop the others: it leaves the clock, as a
            # stream that raises on `MediaClock` does.
            logger.exception(
                "stream failed on the media pump; it is dropped",
                extra={"event": "rtp.stream_failed", "call_uuid": stream.label},
            )
            stream.set_ticking(False)
