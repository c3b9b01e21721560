"""The one media clock: a single task ticks every 20 ms and walks all active streams.

Ticks are scheduled on absolute times (start + n × 20 ms) so that sleep overshoot does
not accumulate as drift. A tick that wakes a whole frame late or more sends one frame and
restarts the schedule from now; the missed frames are not sent in a burst. A late tick
mostly means the process is short of CPU, and a burst would add work exactly then: in
`bench/engine.py` at 1,000 calls on a saturated core, catching up to 3 frames doubled
the receiver's p99 pacing error (34 ms against 17-22 ms). The RTP timestamps stay
continuous either way; the far end's jitter buffer absorbs the shift.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from ivrcast.rtp.pump import PumpStream, StreamPump

logger = logging.getLogger(__name__)

PTIME = 0.020  # 20 ms packetisation, 160 G.711 samples
# The no-RTP timeout is seconds long: checking it every 10th tick (200 ms) keeps that
# work off nine ticks in ten.
TIMEOUT_CHECK_TICKS = 10


class Ticking(Protocol):
    """What the clock walks: an `RtpStream`, or a `dtmf_send.KeyPress` standing in for
    one while it sends a key."""

    label: str

    def tick(self) -> None: ...

    def check_rtp_timeout(self, now: float) -> None: ...


def tick_time(scheduled: float, now: float, interval: float) -> float:
    """What a tick due at `scheduled` and woken at `now` counts as: its slot, or `now`
    when it is a whole frame late or more (the schedule restarts there)."""
    return now if now - scheduled >= interval else scheduled


class MediaClock:
    """Ticks Python streams (`RtpStream`, `KeyPress`) one by one, and the streams of a
    native pump (`PumpStream`) with one call to their pump, unless the pump runs its own
    media thread (the engine's), which ticks them on the same rule (`tick_time`) off the
    event loop. The no-RTP timeouts of every stream are checked here either way."""

    def __init__(self, *, interval: float = PTIME) -> None:
        self.interval = interval
        self._streams: dict[int, Ticking] = {}
        self._pumped: dict[int, PumpStream] = {}
        self._pumps: dict[int, StreamPump] = {}
        self._task: asyncio.Task[None] | None = None
        self._late_ticks = 0

    @property
    def late_ticks(self) -> int:
        """Ticks a frame late or more, which restarted the schedule: this clock's and
        those of the pumps that tick on their own media thread."""
        return self._late_ticks + sum(pump.late_ticks for pump in self._pumps.values())

    def add(self, stream: Ticking) -> None:
        if isinstance(stream, PumpStream):
            stream.set_ticking(True)
            self._pumped[id(stream)] = stream
            self._pumps[id(stream.pump)] = stream.pump
        else:
            self._streams[id(stream)] = stream

    def remove(self, stream: Ticking) -> None:
        if isinstance(stream, PumpStream):
            stream.set_ticking(False)
            self._pumped.pop(id(stream), None)
        else:
            self._streams.pop(id(stream), None)

    def __len__(self) -> int:
        return len(self._streams) + len(self._pumped)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="media-clock")
            self._task.add_done_callback(self._on_done)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "media clock died",
                exc_info=task.exception(),
                extra={"event": "rtp.clock_died"},
            )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        scheduled = loop.time() + self.interval
        ticks = 0
        while True:
            # Even a late tick yields to the loop first: under overload the clock must not
            # starve signalling (answers, BYEs) and the streams' reads.
            await asyncio.sleep(max(scheduled - loop.time(), 0.0))
            now = loop.time()
            slot = tick_time(scheduled, now, self.interval)
            if slot != scheduled:
                if self._ticks_here():
                    self._late_ticks += 1
                scheduled = slot
            self._tick_all()
            ticks += 1
            if ticks % TIMEOUT_CHECK_TICKS == 0:
                self._check_timeouts(now)
            scheduled += self.interval

    def _ticks_here(self) -> bool:
        """Whether this clock sends anything: a late tick that sends nothing (every
        stream on a pump with its own media thread) delays no packet, and is not one."""
        return bool(self._streams) or any(not pump.threaded for pump in self._pumps.values())

    def _tick_all(self) -> None:
        for pump in tuple(self._pumps.values()):
            try:
                pump.tick()
            except Exception:
                # The pump isolates its streams' callbacks; what gets here (no memory)
                # concerns every stream, and the next tick tries again.
                logger.exception("media pump tick failed", extra={"event": "rtp.pump_failed"})
        # A stream's callbacks may end its call and remove it: walk a snapshot.
        for stream in tuple(self._streams.values()):
            try:
                stream.tick()
            except Exception:
                self._drop_broken(stream)

    def _check_timeouts(self, now: float) -> None:
        for pump in tuple(self._pumps.values()):
            try:
                pump.check_rtp_timeout(now)
            except Exception:
                logger.exception("media pump check failed", extra={"event": "rtp.pump_failed"})
        for stream in tuple(self._streams.values()):
            try:
                stream.check_rtp_timeout(now)
            except Exception:
                self._drop_broken(stream)

    def _drop_broken(self, stream: Ticking) -> None:
        # One broken stream must not stop the clock for every other call.
        logger.exception(
            "stream failed on the media clock; it is dropped",
            extra={"event": "rtp.stream_failed", "call_uuid": stream.label},
        )
        self.remove(stream)
