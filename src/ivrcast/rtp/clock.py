"""The one media clock: a single task ticks every 20 ms and walks all active streams.

Ticks are scheduled on absolute times (start + n × 20 ms) so that sleep overshoot does
not accumulate as drift. A tick that wakes late by more than a frame sends the missed
frames at once (up to `MAX_CATCH_UP`, a burst a jitter buffer absorbs); beyond that the
backlog is dropped and the schedule restarts from now, because a long burst is worse than
a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ivrcast.rtp.stream import RtpStream

logger = logging.getLogger(__name__)

PTIME = 0.020  # 20 ms packetisation, 160 G.711 samples
MAX_CATCH_UP = 3
# The no-RTP timeout is seconds long: checking it every 10th tick (200 ms) keeps that
# work off nine ticks in ten.
TIMEOUT_CHECK_TICKS = 10


class MediaClock:
    def __init__(self, *, interval: float = PTIME) -> None:
        self.interval = interval
        self._streams: dict[int, RtpStream] = {}
        self._task: asyncio.Task[None] | None = None
        self.late_ticks = 0  # ticks that had to catch up or resynchronise
        self.tick_hook: Callable[[float, float], None] | None = None  # (scheduled, actual)

    def add(self, stream: RtpStream) -> None:
        self._streams[id(stream)] = stream

    def remove(self, stream: RtpStream) -> None:
        self._streams.pop(id(stream), None)

    def __len__(self) -> int:
        return len(self._streams)

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
            frames = 1 + int((now - scheduled) // self.interval)
            if frames > 1:
                self.late_ticks += 1
            if frames > MAX_CATCH_UP:
                frames = 1
                scheduled = now
            if self.tick_hook is not None:
                self.tick_hook(scheduled, now)
            for _ in range(frames):
                self._tick_all()
            ticks += 1
            if ticks % TIMEOUT_CHECK_TICKS == 0:
                self._check_timeouts(now)
            scheduled += frames * self.interval

    def _tick_all(self) -> None:
        # A stream's callbacks may end its call and remove it: walk a snapshot.
        for stream in tuple(self._streams.values()):
            try:
                stream.tick()
            except Exception:
                self._drop_broken(stream)

    def _check_timeouts(self, now: float) -> None:
        for stream in tuple(self._streams.values()):
            try:
                stream.check_rtp_timeout(now)
            except Exception:
                self._drop_broken(stream)

    def _drop_broken(self, stream: RtpStream) -> None:
        # One broken stream must not stop the clock for every other call.
        logger.exception(
            "stream tick failed",
            extra={"event": "rtp.tick_failed", "call_uuid": stream.label},
        )
        self.remove(stream)
