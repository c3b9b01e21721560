"""Transcoding in worker processes: bounded, and one voice at a time per account.

Decoding is CPU-bound and its cost is the file's to choose (a 241 KB FLAC of silence can
declare ten minutes of 8-channel 192 kHz audio). Run in the API's threads, a few such
uploads would hold every thread the database work needs and stall every tenant. So each
voice is decoded in a small process pool of its own (`[limits] transcode_workers`): the
API process keeps its core, and at most that many decodes run at once, whoever sends
them. An account's voices go one at a time (the rest wait their turn without holding a
worker), so one account cannot fill the pool's queue ahead of everyone else.

The pool is created on first use and shut down by its owner (the app's lifespan, or the
CLI command that made it). Workers are started by the forkserver, never by forking the
multi-threaded API process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ivrcast.config import LimitSettings
from ivrcast.voices.errors import NotAudio
from ivrcast.voices.transcode import EncodedVoice, transcode


@dataclass(frozen=True)
class VoiceLimits:
    """What a voice may be, checked in the worker (picklable)."""

    max_seconds: float
    max_channels: int
    max_sample_rate: int

    @classmethod
    def from_settings(cls, limits: LimitSettings) -> VoiceLimits:
        return cls(
            max_seconds=limits.max_voice_seconds,
            max_channels=limits.max_voice_channels,
            max_sample_rate=limits.max_voice_sample_rate,
        )


TranscodeJob = Callable[[bytes, VoiceLimits], EncodedVoice]
"""What a worker runs; a module-level function, so that it can be sent to a worker."""


def transcode_within(data: bytes, limits: VoiceLimits) -> EncodedVoice:
    """The worker's job: `transcode` with the configured limits."""
    return transcode(
        data,
        max_duration=limits.max_seconds,
        max_channels=limits.max_channels,
        max_sample_rate=limits.max_sample_rate,
    )


class TranscodePool:
    def __init__(self, workers: int = 1, *, job: TranscodeJob = transcode_within) -> None:
        self.workers = workers
        self._job = job
        self._executor: ProcessPoolExecutor | None = None
        self._turns: dict[int, asyncio.Lock] = {}
        self._waiting: Counter[int] = Counter()
        self._retrying = asyncio.Lock()

    async def transcode(self, account_id: int, data: bytes, limits: VoiceLimits) -> EncodedVoice:
        """Transcode `data` in a worker, after the account's earlier voices are done.

        Raises what `transcode` raises (`VoiceError`s, rebuilt from the worker)."""
        turn = self._turns.setdefault(account_id, asyncio.Lock())
        self._waiting[account_id] += 1
        try:
            async with turn:
                try:
                    return await self._run(data, limits)
                except BrokenProcessPool:
                    # A worker died (FFmpeg crashed on some file, or the OOM killer): every
                    # voice queued in that pool fails with it. Each is tried once more in
                    # a fresh pool, one retry at a time, so that a file that kills a worker
                    # again takes no innocent voice with it, and only it is refused.
                    async with self._retrying:
                        try:
                            return await self._run(data, limits)
                        except BrokenProcessPool as exc:
                            raise NotAudio("the decoder stopped on this file") from exc
        finally:
            self._waiting[account_id] -= 1
            if not self._waiting[account_id]:
                del self._waiting[account_id]
                del self._turns[account_id]

    async def _run(self, data: bytes, limits: VoiceLimits) -> EncodedVoice:
        executor = self._pool()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                executor, self._job, data, limits
            )
        except BrokenProcessPool:
            if self._executor is executor:
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            raise

    def pending(self, account_id: int) -> int:
        """The account's voices being transcoded or waiting for their turn."""
        return self._waiting[account_id]

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("forkserver")
            )
        return self._executor

    def shutdown(self) -> None:
        """Stop the workers (after their current voice); queued voices are dropped.
        Blocking. The pool starts again if used afterwards."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
