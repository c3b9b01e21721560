"""The dialer loop: claim due calls, hand them to the engine, report what happened.

One asyncio task claims (`_claim_round`): it expires todayonly=1 calls whose day has
closed, plans slots with `FairShare` within every limit, and claims that many calls,
all in one write transaction. Each claimed call then runs as a task of its own
(`_run_call`): wait for a channel and a pacer slot, INVITE through the engine, fail over
to the next trunk on a trunk failure, and queue its progress and its `CallEnd` for the
`ProgressWriter` (`dialer.progress`), which commits them in batches. The database is
only ever touched from one worker thread (`dialer.database`), so the media clock on the
event loop never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ivrcast.clock import Clock
from ivrcast.config import Settings
from ivrcast.dialer.database import DatabaseThread
from ivrcast.dialer.fairness import FairShare, Slot
from ivrcast.dialer.limits import TrunkState
from ivrcast.dialer.metrics import DialerMetrics
from ivrcast.dialer.progress import Finished, Progress, ProgressWriter
from ivrcast.dialer.routing import Router, caller_id
from ivrcast.dialer.voice_cache import VoiceCache
from ivrcast.dialer.windows import CountryTime
from ivrcast.hangup import BY_CALLER, OTHER
from ivrcast.numbers import E164, format_for_trunk, get_nation
from ivrcast.recordings import recording_path
from ivrcast.rtp import EncodedAudio
from ivrcast.rtp.amd import AmdConfig
from ivrcast.sip import CallEvent, CallOutcome, CallRequest, Engine, Trunk
from ivrcast.store import transitions
from ivrcast.store.records import RecordBuilder
from ivrcast.store.transitions import CallEnd, ClaimedCall, DueTask, Invite
from ivrcast.store.voices import voice_audio_many

logger = logging.getLogger(__name__)

MAX_KEYS = 64  # the width of `calls.keys`
MAX_REASON = 500  # a far end's reason phrase is kept, not a novel
# How far each due task's queue is counted before planning. A round gives most tasks a
# few slots; the few given that many are counted further, only as far as the round can
# go (`FairShare.plan`'s recount). Counting whole queues would cost the backlog's depth.
COUNT_AHEAD = 8


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
    ) -> None:
        self._settings = settings
        self._dbt = dbt
        self._engine = engine
        self.router = router
        self.node_id = node_id
        self._clock = clock
        self._build_record = build_record
        self.metrics = metrics
        self._fair = FairShare()
        self.writer = ProgressWriter(dbt, build_record, clock)
        self._countries: dict[str, CountryTime] = {}
        self._voices = VoiceCache()
        self.finished = 0  # calls this node has ended (its heartbeat reports the count)
        self._jobs: set[asyncio.Task[None]] = set()
        self._unsent: list[int] = []
        self._capacity = asyncio.Condition()
        self._wake = asyncio.Event()
        self.stopping = False
        self._warned_unrouted: set[str] = set()
        self._amd = amd_config(settings)

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
            tasks = transitions.due_tasks(conn, now=now, count_up_to=COUNT_AHEAD)
            expired_ids = [
                t.id
                for t in tasks
                if t.todayonly == 1
                and self.country(t.nationcode).todayonly_expired(t.local_day, now)
            ]
            expired = transitions.expire_queued_calls(
                conn, expired_ids, build_record=self._build_record, now=now
            )
            transitions.finish_ended_tasks(conn, now=now)
            expired_set = set(expired_ids)
            # A paused task claims nothing; nor does one whose queued calls are later
            # rounds not yet due.
            due = [
                t
                for t in tasks
                if t.id not in expired_set and t.status == "active" and t.queued > 0
            ]
            self._warn_unrouted(due)
            slots = self._fair.plan(
                due,
                dialable=lambda t: self.country(t.nationcode).is_open(now),
                account_active=transitions.active_calls_by_account(conn),
                allowance=allowance,
                router=self.router,
                limit=self._settings.dialer.claim_batch,
                recount=functools.partial(transitions.count_due_calls, conn, now=now),
            )
            wanted: dict[str, list[Slot]] = {}
            for slot in slots:
                wanted.setdefault(slot.task.id, []).append(slot)
            claimed: list[tuple[ClaimedCall, Slot]] = []
            for task_id, task_slots in wanted.items():
                calls = transitions.claim_due_calls(
                    conn,
                    task_id=task_id,
                    limit=len(task_slots),
                    node_id=self.node_id,
                    build_record=self._build_record,
                    now=now,
                )
                claimed.extend(zip(calls, task_slots, strict=False))
            needed = self._voices.missing({slot.task.voice_id for _, slot in claimed})
            voices = voice_audio_many(conn, needed)
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
            outcome = await self._attempt_or_end(job, trunk)
            trunk.active -= 1
            trunk.reserved -= 1
            self.metrics.active.labels(trunk.name).dec()
            if isinstance(outcome, CallOutcome) and outcome.rtp_rejected:
                self.metrics.rtp_rejected.labels(trunk.name).inc(outcome.rtp_rejected)
            await self._notify_capacity()
            if isinstance(outcome, CallOutcome) and outcome.trunk_failed and not self.stopping:
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
            end = outcome if isinstance(outcome, CallEnd) else self._outcome_end(job, outcome)
            self.metrics.finished.labels(trunk.name, end.status).inc()
            self.finished += 1
            self.writer.add(Finished(call.id, end))
            logger.info(
                "finished %s, record queued",
                end.status,
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
            return transitions.release_calls(conn, call_ids, node_id=self.node_id)

    async def _attempt_or_end(self, job: _Job, trunk: TrunkState) -> CallOutcome | CallEnd:
        """The engine's outcome, or the end of a call the dialer itself failed."""
        try:
            return await self._attempt(job, trunk)
        except Exception as exc:
            # A bug or a number the trunk's format cannot write: the call must still
            # end, once, rather than sit in `dialing` until the next restart.
            logger.exception(
                "call failed in the dialer",
                extra={"event": "dialer.call_error", "call_uuid": job.call.uuid},
            )
            return self._error_end(job, exc)

    async def _attempt(self, job: _Job, trunk: TrunkState) -> CallOutcome:
        call, task = job.call, job.task
        settings = trunk.settings
        nation = get_nation(call.nationcode)
        dest = format_for_trunk(E164(call.number), nation, settings.number_format)
        cid = caller_id(task.disnumber, trunk, call.number)
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
            record_to=(
                recording_path(self._settings.recordings_dir, call.uuid) if task.record else None
            ),
            amd=self._amd if task.amd else None,
            amd_action=amd_action(task.amdaction),
        )
        self.writer.add(Invite(call.id, settings.name, cid, self._clock.now()))
        self.metrics.invites.labels(settings.name).inc()
        trunk.sent += 1
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
                        "node": self.node_id,
                    },
                )

        outcome = await self._engine.originate(request, on_event)
        job.invited_at = job.invited_at or outcome.invited_at
        return outcome

    def _error_end(self, job: _Job, exc: Exception) -> CallEnd:
        return CallEnd(
            status="failed",
            ended_at=self._clock.now(),
            trunk=job.trunk.name,
            invited_at=job.invited_at,
            sip_reason=_bounded_reason(f"dialer error: {exc}"),
            hangup_cause=OTHER,
            hangup_direction=BY_CALLER,
        )

    def _outcome_end(self, job: _Job, outcome: CallOutcome) -> CallEnd:
        """The engine's outcome as the call's end. The one place a `CallOutcome` is read
        for the store."""
        return CallEnd(
            status=outcome.status,
            ended_at=outcome.ended_at or self._clock.now(),
            trunk=job.trunk.name,
            # A failover keeps the first INVITE's time: the call started then.
            invited_at=job.invited_at or outcome.invited_at,
            ringing_at=outcome.ringing_at,
            answered_at=outcome.answered_at,
            sip_code=outcome.sip_code,
            sip_reason=_bounded_reason(outcome.sip_reason),
            q850_cause=outcome.q850_cause,
            hangup_cause=outcome.hangup_cause,
            hangup_direction=outcome.hangup_direction,
            keys=outcome.keys[:MAX_KEYS],
            codec=outcome.codec,
            rtp_sent=outcome.rtp_sent,
            rtp_received=outcome.rtp_received,
            rtp_lost=outcome.rtp_lost,
            recorded=outcome.recorded if job.task.record else None,
            answered_by=outcome.answered_by,
            amd_ms=outcome.amd_ms,
        )


def amd_config(settings: Settings) -> AmdConfig:
    """`[amd]` as the detector takes it."""
    return AmdConfig(**settings.amd.model_dump())


def amd_action(stored: str | None) -> Literal["hangup", "play", "beep"]:
    return "play" if stored == "play" else "beep" if stored == "beep" else "hangup"


def _bounded_reason(reason: str) -> str:
    return reason[:MAX_REASON]
