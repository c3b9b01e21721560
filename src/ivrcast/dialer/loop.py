"""The dialer loop: claim due calls, hand them to the engine, write what happened.

One asyncio task claims (`_claim_round`): it expires todayonly=1 calls whose day has
closed, plans slots with `FairShare` within every limit, and claims that many calls,
all in one write transaction. Each claimed call then runs as a task of its own
(`_run_call`): wait for a channel and a pacer slot, INVITE through the engine, fail over
to the next trunk on a trunk failure, and queue its progress and outcome for the
`ProgressWriter`, which commits them in batches. The database is only ever touched
from one worker thread, so the media clock on the event loop never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from ivrcast.clock import Clock
from ivrcast.config import Settings
from ivrcast.dialer.fairness import FairShare, Slot
from ivrcast.dialer.limits import TrunkState
from ivrcast.dialer.metrics import DialerMetrics
from ivrcast.dialer.routing import Router, caller_id
from ivrcast.dialer.voice_cache import VoiceCache
from ivrcast.dialer.windows import CountryTime
from ivrcast.numbers import E164, format_for_trunk, get_nation
from ivrcast.rtp import EncodedAudio
from ivrcast.sip import CallEvent, CallOutcome, CallRequest, Engine, Trunk
from ivrcast.sip.outcome import BY_CALLER, OTHER
from ivrcast.store import dialing
from ivrcast.store.dialing import ClaimedCall, DueTask
from ivrcast.store.engine import Database
from ivrcast.store.records import RecordBuilder

logger = logging.getLogger(__name__)

T = TypeVar("T")

FLUSH_INTERVAL = 0.05  # longest a progress update waits to be batched with others
RETRY_DELAY = 1.0  # after a database error in the writer


class DatabaseThread:
    """The one thread that talks to the database, so statements never block the loop
    and SQLite sees a single writer from this process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ivrcast-db")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=True)


# -- progress and outcomes, written in batches -------------------------------------------


@dataclass(frozen=True)
class Invited:
    call_id: int
    trunk: str
    disnumber: str
    at: datetime


@dataclass(frozen=True)
class Progress:
    call_id: int
    kind: str  # "ringing" | "answered"
    at: datetime


@dataclass(frozen=True)
class Finished:
    call_id: int
    values: dict[str, Any]


Update = Invited | Progress | Finished


class ProgressWriter:
    """Commits call progress and outcomes in order, many per transaction.

    An outcome still in this queue when the process dies is lost with it, and the call
    stays active in the database: recovery then ends it as `interrupted`, so it still
    gets exactly one final state and is never dialed again.
    """

    def __init__(self, dbt: DatabaseThread, build_record: RecordBuilder, clock: Clock) -> None:
        self._dbt = dbt
        self._build_record = build_record
        self._clock = clock
        self._pending: list[Update] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, update: Update) -> None:
        self._pending.append(update)
        self._idle.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Wait until everything added so far is committed."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_INTERVAL)
            self._wake.clear()
            batch, self._pending = self._pending, []
            try:
                await self._dbt.run(self._apply, batch)
            except Exception:
                logger.exception(
                    "could not write %d call updates; retrying",
                    len(batch),
                    extra={"event": "dialer.write_failed"},
                )
                self._pending[:0] = batch
                self._wake.set()
                await asyncio.sleep(RETRY_DELAY)
                continue
            if not self._pending:
                self._idle.set()

    def _apply(self, batch: list[Update]) -> None:
        # Grouped by kind in this order, a call's updates keep their own order: its
        # INVITE(s), 18x and 2xx always come before its end.
        invites = [
            dialing.Invite(u.call_id, u.trunk, u.disnumber, u.at)
            for u in batch
            if isinstance(u, Invited)
        ]
        progress = [u for u in batch if isinstance(u, Progress)]
        finished = [(u.call_id, u.values) for u in batch if isinstance(u, Finished)]
        now = self._clock.now()
        with self._dbt.db.write() as conn:
            dialing.mark_invited(conn, invites)
            dialing.mark_ringing(conn, [(p.call_id, p.at) for p in progress if p.kind == "ringing"])
            dialing.mark_answered(
                conn, [(p.call_id, p.at) for p in progress if p.kind == "answered"]
            )
            if finished:
                dialing.finish_active_calls(
                    conn, finished, build_record=self._build_record, now=now
                )
                dialing.finish_ended_tasks(conn, now=now)


# -- the loop --------------------------------------------------------------------------


@dataclass
class _Job:
    """A claimed call on its way through one or more trunks."""

    call: ClaimedCall
    task: DueTask
    trunk: TrunkState
    audio: EncodedAudio
    tried: list[str] = field(default_factory=list)
    invited_at: datetime | None = None


@dataclass
class _Round:
    claimed: list[tuple[ClaimedCall, Slot]]
    voices: dict[int, tuple[bytes, bytes]]
    expired: int


class Dialer:
    def __init__(
        self,
        settings: Settings,
        dbt: DatabaseThread,
        engine: Engine,
        router: Router,
        *,
        node_id: str,
        clock: Clock,
        build_record: RecordBuilder,
        metrics: DialerMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._dbt = dbt
        self._engine = engine
        self.router = router
        self.node_id = node_id
        self._clock = clock
        self._build_record = build_record
        self.metrics = metrics
        self._rng = rng or random.Random()
        self._fair = FairShare()
        self.writer = ProgressWriter(dbt, build_record, clock)
        self._countries: dict[str, CountryTime] = {}
        self._voices = VoiceCache()
        self._jobs: set[asyncio.Task[None]] = set()
        self._unsent: list[int] = []
        self._capacity = asyncio.Condition()
        self._wake = asyncio.Event()
        self.stopping = False
        self._warned_unrouted: set[str] = set()

    # -- claiming ---------------------------------------------------------------------

    def country(self, code: str) -> CountryTime:
        country = self._countries.get(code)
        if country is None:
            country = self._countries[code] = CountryTime.from_settings(self._settings, code)
        return country

    async def run(self) -> None:
        """Claim and dispatch until `stop_claiming()`; active calls keep running."""
        poll = self._settings.dialer.poll_interval
        while not self.stopping:
            try:
                await self.claim_round()
            except Exception:
                logger.exception("claim round failed", extra={"event": "dialer.claim_failed"})
            self._wake.clear()
            if self.stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)

    async def stop_claiming(self) -> None:
        """Claim no more; calls still waiting for a channel or a pacer slot give up."""
        self.stopping = True
        self._wake.set()
        async with self._capacity:
            self._capacity.notify_all()

    async def claim_round(self) -> int:
        """One round: expire, plan and claim; start a job per claimed call. Returns how
        many calls were claimed."""
        loop = asyncio.get_running_loop()
        horizon = 2 * self._settings.dialer.poll_interval
        allowance = {
            trunk.name: trunk.allowance(loop.time(), horizon)
            for trunk in self.router.trunks.values()
        }
        started = loop.time()
        result = await self._dbt.run(self._claim_round, self._clock.now(), allowance)
        self.metrics.claim_seconds.observe(loop.time() - started)
        voices = self._voices.for_round(
            {slot.task.voice_id for _, slot in result.claimed}, result.voices
        )
        for call, slot in result.claimed:
            slot.trunk.reserved += 1
            audio = voices[slot.task.voice_id]
            logger.info(
                "claimed",
                extra={
                    "event": "dialer.claimed",
                    "call_uuid": call.uuid,
                    "task_id": call.task_id,
                    "node": self.node_id,
                },
            )
            job = _Job(call=call, task=slot.task, trunk=slot.trunk, audio=audio)
            task = asyncio.create_task(self._run_call(job), name=f"call-{call.uuid}")
            self._jobs.add(task)
            task.add_done_callback(self._job_done)
        self.metrics.claimed.inc(len(result.claimed))
        return len(result.claimed)

    def _claim_round(self, now: datetime, allowance: dict[str, int]) -> _Round:
        with self._dbt.db.write() as conn:
            tasks = dialing.due_tasks(conn)
            expired_ids = [
                t.id
                for t in tasks
                if t.todayonly == 1
                and self.country(t.nationcode).todayonly_expired(t.local_day, now)
            ]
            expired = dialing.expire_queued_calls(
                conn, expired_ids, build_record=self._build_record, now=now
            )
            dialing.finish_ended_tasks(conn, now=now)
            expired_set = set(expired_ids)
            due = [t for t in tasks if t.id not in expired_set]
            self._warn_unrouted(due)
            slots = self._fair.plan(
                due,
                dialable=lambda t: self.country(t.nationcode).is_open(now),
                account_active=dialing.active_calls_by_account(conn),
                allowance=allowance,
                router=self.router,
                limit=self._settings.dialer.claim_batch,
            )
            wanted: dict[str, list[Slot]] = {}
            for slot in slots:
                wanted.setdefault(slot.task.id, []).append(slot)
            claimed: list[tuple[ClaimedCall, Slot]] = []
            for task_id, task_slots in wanted.items():
                calls = dialing.claim_due_calls(
                    conn, task_id=task_id, limit=len(task_slots), node_id=self.node_id, now=now
                )
                claimed.extend(zip(calls, task_slots, strict=False))
            needed = self._voices.missing({slot.task.voice_id for _, slot in claimed})
            voices = dialing.voice_audio_many(conn, needed)
        for _, slot in claimed:
            self.metrics.queue_wait.observe(max(0.0, (now - slot.task.created_at).total_seconds()))
        if expired:
            logger.info(
                "expired %d queued calls of %d tasks",
                expired,
                len(expired_ids),
                extra={"event": "dialer.expired"},
            )
        return _Round(claimed=claimed, voices=voices, expired=expired)

    def _warn_unrouted(self, tasks: list[DueTask]) -> None:
        for task in tasks:
            code = task.nationcode
            if code not in self.router.countries and code not in self._warned_unrouted:
                self._warned_unrouted.add(code)
                logger.warning(
                    "no trunk serves nation %s: its calls stay queued",
                    code,
                    extra={"event": "dialer.no_trunk", "nationcode": code},
                )

    # -- one call ---------------------------------------------------------------------

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._jobs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "call job failed",
                exc_info=task.exception(),
                extra={"event": "dialer.job_failed", "task_name": task.get_name()},
            )

    @property
    def active_jobs(self) -> int:
        return len(self._jobs)

    async def wait_jobs(self, limit: float | None) -> None:
        """Wait up to `limit` seconds for every call job to end."""
        if self._jobs:
            await asyncio.wait(set(self._jobs), timeout=limit)

    async def _run_call(self, job: _Job) -> None:
        call = job.call
        extra = {"call_uuid": call.uuid, "task_id": call.task_id, "node": self.node_id}
        while True:
            trunk = job.trunk
            if not await self._wait_to_send(trunk):
                trunk.reserved -= 1
                self._unsent.append(call.id)
                await self._notify_capacity()
                return
            try:
                outcome = await self._attempt(job, trunk)
            except Exception as exc:
                # A bug or a number the trunk's format cannot write: the call must still
                # end, once, rather than sit in `dialing` until the next restart.
                logger.exception(
                    "call failed in the dialer", extra={"event": "dialer.call_error", **extra}
                )
                outcome = self._error_outcome(exc)
            trunk.active -= 1
            trunk.reserved -= 1
            self.metrics.active.labels(trunk.name).dec()
            if outcome.rtp_rejected:
                self.metrics.rtp_rejected.labels(trunk.name).inc(outcome.rtp_rejected)
            await self._notify_capacity()
            if outcome.trunk_failed and not self.stopping:
                job.tried.append(trunk.name)
                following = self.router.failover(call.nationcode, job.tried)
                if following is not None:
                    logger.info(
                        "trunk %s failed (%s %s); retrying on %s",
                        trunk.name,
                        outcome.sip_code,
                        outcome.sip_reason,
                        following.name,
                        extra={"event": "dialer.failover", "trunk": trunk.name, **extra},
                    )
                    self.metrics.failovers.labels(trunk.name, following.name).inc()
                    following.reserved += 1
                    job.trunk = following
                    continue
            self.metrics.finished.labels(trunk.name, outcome.status).inc()
            self.writer.add(Finished(call.id, self._outcome_values(job, outcome)))
            logger.info(
                "finished %s, record queued",
                outcome.status,
                extra={"event": "dialer.finished", "trunk": trunk.name, **extra},
            )
            return

    async def _wait_to_send(self, trunk: TrunkState) -> bool:
        """Take a channel of `trunk`, then wait for its pacer slot. False when the
        dialer began stopping first: the INVITE was not sent."""
        async with self._capacity:
            await self._capacity.wait_for(lambda: self.stopping or trunk.free_channels > 0)
            if self.stopping:
                return False
            trunk.active += 1
        loop = asyncio.get_running_loop()
        at = trunk.pacer.reserve(loop.time())
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.stopping:
            trunk.active -= 1
            return False
        return True

    async def _notify_capacity(self) -> None:
        async with self._capacity:
            self._capacity.notify_all()
        self._wake.set()

    async def release_unsent(self) -> int:
        """Give back the calls that never left (the dialer is stopping)."""
        unsent, self._unsent = self._unsent, []
        if not unsent:
            return 0
        return await self._dbt.run(self._release, unsent)

    def _release(self, call_ids: list[int]) -> int:
        with self._dbt.db.write() as conn:
            return dialing.release_calls(conn, call_ids, node_id=self.node_id)

    async def _attempt(self, job: _Job, trunk: TrunkState) -> CallOutcome:
        call, task = job.call, job.task
        settings = trunk.settings
        nation = get_nation(call.nationcode)
        dest = format_for_trunk(E164(call.number), nation, settings.number_format)
        cid = caller_id(task.disnumber, trunk, self._rng)
        request = CallRequest(
            call_uuid=call.uuid,
            trunk=Trunk(
                name=settings.name,
                host=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password,
            ),
            dest=dest,
            caller_id=cid,
            audio=job.audio,
            wait_time=float(task.waittime),
            conn_time=float(task.conntime),
            collect_keys=task.userkey,
            key_wait=self._settings.limits.key_wait_seconds,
        )
        self.writer.add(Invited(call.id, settings.name, cid, self._clock.now()))
        self.metrics.invites.labels(settings.name).inc()
        self.metrics.active.labels(settings.name).inc()

        def on_event(event: CallEvent) -> None:
            if event.kind in ("ringing", "answered"):
                self.writer.add(Progress(call.id, event.kind, event.at))
            if event.kind == "answered":
                logger.info(
                    "answered",
                    extra={
                        "event": "dialer.answered",
                        "call_uuid": call.uuid,
                        "task_id": call.task_id,
                        "trunk": settings.name,
                    },
                )

        outcome = await self._engine.originate(request, on_event)
        job.invited_at = job.invited_at or outcome.invited_at
        return outcome

    def _error_outcome(self, exc: Exception) -> CallOutcome:
        now = self._clock.now()
        return CallOutcome(
            status="failed",
            sip_code=None,
            sip_reason=f"dialer error: {exc}",
            q850_cause=None,
            invited_at=None,
            ringing_at=None,
            answered_at=None,
            ended_at=now,
            hangup_by=None,
            hangup_cause=OTHER,
            hangup_direction=BY_CALLER,
        )

    @staticmethod
    def _outcome_values(job: _Job, outcome: CallOutcome) -> dict[str, Any]:
        ended = outcome.ended_at or datetime.now(UTC)
        # A failover keeps the first INVITE's time: the call started then.
        return {
            "status": outcome.status,
            "trunk": job.trunk.name,
            "sip_code": outcome.sip_code,
            "sip_reason": outcome.sip_reason[:500],
            "q850_cause": outcome.q850_cause,
            "invited_at": job.invited_at or outcome.invited_at,
            "ringing_at": outcome.ringing_at,
            "answered_at": outcome.answered_at,
            "ended_at": ended,
            "hangup_cause": outcome.hangup_cause,
            "hangup_direction": outcome.hangup_direction,
            "keys": outcome.keys[:64],
            "codec": outcome.codec,
            "rtp_sent": outcome.rtp_sent,
            "rtp_received": outcome.rtp_received,
            "rtp_lost": outcome.rtp_lost,
        }
