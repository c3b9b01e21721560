"""Pushing call records from the outbox to the customers' callback URLs.

`CallbackSender.run` loops: write down the results of finished attempts, claim due rows
(`store.outbox.claim_due_deliveries`, with a lease), and start one POST per row. All
state is in the database, so any number of senders, in one process or several, can run
against it, and a sender that is killed loses nothing: what it had claimed becomes due
again when the lease ends (`lease_seconds`), and may then arrive twice (receivers dedupe
on `uuid`).

One receiver cannot hold up the others:

* at most `concurrency` rows claimed at once in all; per origin (scheme, host, port), at
  most `per_host` POSTs in flight and as many claimed rows waiting to start the moment a
  slot frees (`QUEUE_DEPTH` times as many while the origin answers within
  `FAST_ANSWER_SECONDS`: a fast receiver empties a queue of `per_host` before the next
  claim comes back). The claim offers each account only what its origin has room for, so
  one receiver's backlog never takes the slots of the others;
* each attempt (DNS, SSRF check, connect, request, response) must finish within
  `timeout_seconds`, and at most `max_response_bytes` of the answer are read;
* redirects are not followed: the signed record goes only to the configured URL, and a
  3xx counts as a failed attempt (the message names the `Location`).

A 2xx answer acknowledges the record. Anything else (another status, a timeout, a refused
connection, an address the SSRF guard refuses) is retried with `backoff.Backoff` until
the delivery's maximum age, then the delivery is dead. The URL and the signing secret are
the account's at the time of each attempt (decrypted with the server key,
`ivrcast.credentials`); an account without a secret gets unsigned callbacks. Every
attempt connects only to addresses the SSRF guard checked; a host name's are resolved
again after `resolutions.KEEP_SECONDS`, or after an attempt to them failed.

Between passes the sender sleeps until woken (`wakeup.SenderWakeup`: an attempt finished,
or records were committed, in this process or another), or until its fallback poll:
`poll_seconds`, or sooner when a row it put off (a retry) comes due.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import random
from collections import Counter, deque
from datetime import datetime, timedelta
from typing import NamedTuple

from ivrcast.callbacks.backoff import Backoff, Uniform
from ivrcast.callbacks.poster import Answer, CallbackPoster, PostFailed
from ivrcast.callbacks.resolutions import Resolutions
from ivrcast.callbacks.signing import HEADER, sign
from ivrcast.callbacks.wakeup import SenderWakeup
from ivrcast.clock import Clock, SystemClock
from ivrcast.config import Settings
from ivrcast.credentials import SecretUnreadable, load_secret_key, open_secret
from ivrcast.errors import StoreError
from ivrcast.logthrottle import LogThrottle
from ivrcast.netguard import (
    UnresolvableHost,
    UrlNotAllowed,
    UrlTarget,
    check_url,
)
from ivrcast.store.engine import Connection, Database, LoopWriter
from ivrcast.store.outbox import (
    Delivery,
    Outcome,
    claim_due_deliveries,
    record_outcomes,
    release_deliveries,
)

logger = logging.getLogger(__name__)

USER_AGENT = "ivrcast-callbacks/1"
LEASE_MARGIN_SECONDS = 30.0
"""A lease is `QUEUE_DEPTH` + 1 attempt timeouts (waiting behind the origin's slots, then
its own attempt) plus this, for the result to be written down."""
QUEUE_DEPTH = 3
"""Claimed rows an origin that answers fast may have waiting, in multiples of `per_host`."""
FAST_ANSWER_SECONDS = 1.0
"""An origin whose last attempt was acknowledged within this is fast (see `QUEUE_DEPTH`);
a slow, failing or stalled one keeps a queue of `per_host`, so its claimed rows do not
hold on to the `concurrency` that other receivers could use: when a fast origin turns
slow, the rows queued for it beyond `per_host` are given back at the next pass."""
FAST_ORIGINS = 1024
"""Origins remembered as fast, at most (forgetting one only shortens its queue)."""
HOST_BUSY_DELAY = timedelta(seconds=1)
"""A claimed row whose origin turned out to be full goes back, due again after this."""
DUE_LATER_KEPT = 4096
"""Times of put-off rows remembered to end a sleep early, at most."""
OPENED_SECRETS = 1024
"""Decrypted callback secrets kept per sender, at most."""
CHECKED_URLS = 1024
"""Callback URLs kept parsed and checked (`netguard.check_url`) per sender, at most."""
KEEPALIVE_SECONDS = 30.0
"""A connection idle this long is closed rather than reused."""
CONNECT_TIMEOUT_SECONDS = 5.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
WRITE_DOWN_SECONDS = 0.05
"""Longest a caught-up sender keeps finished attempts before writing them down: on a
loaded PostgreSQL server a pass is several round trips of several milliseconds, and a
pass per finished attempt queued the next record behind them (p99 at 200 records/s)."""
RETRY_LOG_INTERVAL = 60.0
"""At most one "will retry" line per origin (or URL) this often: one dead receiver with
thousands of records behind it would otherwise write a line per attempt."""


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int


class CallbackSender:
    """Delivers due outbox rows; see the module docstring for the rules."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        clock: Clock | None = None,
        rng: Uniform | None = None,
        key: bytes | None = None,
        write_down_seconds: float = WRITE_DOWN_SECONDS,
    ) -> None:
        """`key`: the server key the callback secrets are encrypted with; by default
        loaded from `settings` when the first encrypted secret is met.
        `write_down_seconds`: see `WRITE_DOWN_SECONDS`."""
        config = settings.callbacks
        self._settings = settings
        self._given_key = key
        self._writer = LoopWriter(db)
        self._clock: Clock = clock or SystemClock()
        self._rng: Uniform = rng or random.Random()
        self._allow_private = settings.security.allow_private_urls
        self._concurrency = config.concurrency
        self._per_host = config.per_host
        self._opened: dict[str, str] = {}
        self._timeout = config.timeout_seconds
        self._max_response_bytes = config.max_response_bytes
        self._poll_seconds = config.poll_seconds
        self._lease = timedelta(
            seconds=(QUEUE_DEPTH + 1) * config.timeout_seconds + LEASE_MARGIN_SECONDS
        )
        self._backoff = Backoff(
            base=config.backoff_base_seconds,
            cap=config.backoff_cap_seconds,
            max_age=timedelta(hours=config.max_age_hours),
        )
        self._poster = CallbackPoster(
            connect_timeout=min(self._timeout, CONNECT_TIMEOUT_SECONDS),
            keepalive_seconds=KEEPALIVE_SECONDS,
            max_idle_per_host=self._per_host,
        )
        self._checked: dict[str, UrlTarget] = {}
        self._resolutions = Resolutions(
            allow_private=self._allow_private, monotonic=self._clock.monotonic
        )
        self._in_flight: dict[int, tuple[Delivery, Origin | None, asyncio.Task[None]]] = {}
        self._load: Counter[Origin] = Counter()
        self._fast: set[Origin] = set()
        self._results: list[tuple[Delivery, Outcome]] = []
        self._given_back: list[int] = []
        """Claimed rows to release at the next pass, unattempted (`_shorten_queue`)."""
        self._waiting: dict[Origin, deque[Delivery]] = {}
        self._wake = asyncio.Event()
        self.wakeup = SenderWakeup(db, self._wake.set)
        self._due_later: list[datetime] = []
        """A heap of when the rows this sender put off come due (retries, rows given back
        for a busy origin): the sleep ends at the first at the latest. Other senders'
        retries, and the leases of senders that died, are found by the poll; a database
        query per pass for them would add a round trip to every pass on PostgreSQL."""
        self.passes = 0
        """Passes made so far (to see that wakeups coalesce)."""
        self._sleeping = False
        self._caught_up = False
        """The last claim took every due row it was offered room for: until the next one,
        a finished attempt frees a slot nobody waits for."""
        self._write_down: asyncio.TimerHandle | None = None
        self._write_down_seconds = write_down_seconds
        self._retry_log = LogThrottle(RETRY_LOG_INTERVAL, self._clock.monotonic)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then give back the claimed rows not yet started,
        let the attempts in flight finish (each is bounded by the timeout) and write down
        their results. Cancelling instead abandons them: their rows are retried when the
        lease ends."""
        logger.info("callback sender started", extra={"event": "callback_sender_started"})
        stopped = asyncio.Event()
        wakeup = asyncio.create_task(self.wakeup.run(stopped), name="callback-sender-wakeup")
        try:
            while not stop.is_set():
                try:
                    await self._pass()
                except StoreError as exc:
                    # The database may be restarting; the outbox waits for it.
                    logger.warning(
                        "callback sender cannot reach the database: %s",
                        exc,
                        extra={"event": "callback_sender_db_error"},
                    )
                await self._sleep(stop)
            waiting = [d.id for queue in self._waiting.values() for d in queue]
            waiting += self._given_back
            self._waiting.clear()
            self._given_back = []
            try:
                if waiting:
                    await self._writer.run(_release, waiting, self._clock.now())
                await self._drain()
            except StoreError as exc:
                # Nothing is lost: the rows are retried when their lease ends.
                logger.warning(
                    "callback sender stopped without writing its last results: %s",
                    exc,
                    extra={"event": "callback_sender_db_error"},
                )
        except asyncio.CancelledError:
            self._waiting.clear()
            for task in self._tasks():
                task.cancel()
            await asyncio.gather(*self._tasks(), return_exceptions=True)
            raise
        finally:
            stopped.set()
            await asyncio.gather(wakeup, return_exceptions=True)
            await self.aclose()
            for target, count in self._retry_log.drain():
                logger.info(
                    "%d more callback failures for %s, will retry",
                    count,
                    target,
                    extra={"event": "callback_retry", "suppressed": count},
                )
            logger.info("callback sender stopped", extra={"event": "callback_sender_stopped"})

    @property
    def asleep(self) -> bool:
        """Waiting for a wakeup or the poll, none yet come."""
        return self._sleeping and not self._wake.is_set()

    @property
    def held_results(self) -> int:
        """Finished attempts not yet written down."""
        return len(self._results)

    async def deliver_due(self) -> int:
        """One pass: claim what is due (as much as the free slots can take), post it all,
        write down the results. Returns the number of attempts made."""
        started = await self._pass()
        await self._drain()
        return started

    async def aclose(self) -> None:
        """Close the idle connections (`run` does this itself when it ends)."""
        if self._write_down is not None:
            self._write_down.cancel()
            self._write_down = None
        self._poster.close()
        await self._writer.aclose()

    def _tasks(self) -> list[asyncio.Task[None]]:
        return [task for _delivery, _origin, task in self._in_flight.values()]

    async def _drain(self) -> None:
        # Each finished attempt may start a waiting one.
        while self._in_flight:
            await asyncio.gather(*self._tasks())
        await self._exchange(0, self._clock.now(), {})

    async def _sleep(self, stop: asyncio.Event) -> None:
        """Until woken (an attempt finished, or rows were committed: `SenderWakeup`) since
        the last pass began, `stop` is set, or the fallback poll: `poll_seconds`, or less
        when a row this sender put off comes due before (a retry). No pause to gather
        more: what happens while a pass runs is all taken by the next one, so a busy
        sender's passes grow on their own, and an idle one answers at once."""
        if self._wake.is_set():
            return
        timeout = self._poll_seconds
        if self._due_later:
            until_due = (self._due_later[0] - self._clock.now()).total_seconds()
            timeout = min(timeout, max(until_due, 0.0))
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        self._sleeping = True
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            self._sleeping = False
            for waiter in waiters:
                waiter.cancel()

    async def _pass(self) -> int:
        """Write down the finished attempts and claim what the free slots can take, in one
        transaction; start the claimed attempts. Returns how many were started or queued."""
        self._wake.clear()
        self.passes += 1
        if self._write_down is not None:
            self._write_down.cancel()
            self._write_down = None
        now = self._clock.now()
        # What has come due is this pass's to claim (or, with no room, the attempts'
        # to wake the sender for when they finish).
        while self._due_later and self._due_later[0] <= now:
            heapq.heappop(self._due_later)
        self._poster.close_idle(self._clock.monotonic())
        waiting = sum(len(queue) for queue in self._waiting.values())
        free = self._concurrency - len(self._in_flight) - waiting
        # Each origin takes `per_host` attempts at once and as many waiting behind them
        # (to start the moment a slot frees); an account is offered what its origin has
        # room for, so no account's backlog crowds out the others.
        origins = {d.account_id: o for d, o, _task in self._in_flight.values() if o is not None}
        origins.update({d.account_id: o for o, queue in self._waiting.items() for d in queue})
        account_limits = {account: self._room(origin) for account, origin in origins.items()}
        claimed = await self._exchange(max(free, 0), now, account_limits)
        self._caught_up = _caught_up(claimed, max(free, 0), account_limits, 2 * self._per_host)
        postponed: list[int] = []
        for delivery in claimed:
            origin = self._origin(delivery.url)
            if origin is None or self._load[origin] < self._per_host:
                self._start(delivery, origin)
            elif len(self._waiting.get(origin, ())) < self._queue_size(origin):
                self._waiting.setdefault(origin, deque()).append(delivery)
            else:
                # Another account whose receiver shares the origin got there first.
                postponed.append(delivery.id)
        if postponed:
            await self._writer.run(_release, postponed, now + HOST_BUSY_DELAY)
            self._put_off(now + HOST_BUSY_DELAY)
        return len(claimed) - len(postponed)

    def _put_off(self, due_at: datetime) -> None:
        if len(self._due_later) >= DUE_LATER_KEPT:
            # The latest are forgotten (the poll finds them), the earliest kept.
            self._due_later = heapq.nsmallest(DUE_LATER_KEPT // 2, self._due_later)
        heapq.heappush(self._due_later, due_at)

    def _room(self, origin: Origin) -> int:
        claimed = self._load[origin] + len(self._waiting.get(origin, ()))
        return self._per_host + self._queue_size(origin) - claimed

    def _queue_size(self, origin: Origin) -> int:
        return self._per_host * (QUEUE_DEPTH if origin in self._fast else 1)

    def _shorten_queue(self, origin: Origin) -> None:
        """Back to a queue of `per_host` (newest claims first): the rest is given back."""
        queue = self._waiting.get(origin)
        while queue is not None and len(queue) > self._per_host:
            self._given_back.append(queue.pop().id)

    async def _exchange(
        self, limit: int, now: datetime, account_limits: dict[int, int]
    ) -> list[Delivery]:
        """One transaction (`LoopWriter`): the finished attempts' outcomes, then the claim.
        One per pass, so a pass costs one commit however many attempts it writes down."""
        results, self._results = self._results, []
        given_back, self._given_back = self._given_back, []
        if not results and not given_back and limit == 0:
            return []
        try:
            claimed = await self._writer.run(
                self._record_and_claim,
                [o for _d, o in results],
                given_back,
                limit,
                now,
                account_limits,
            )
        except BaseException:
            # Kept for the next pass: their rows stay leased meanwhile.
            self._results = results + self._results
            self._given_back = given_back + self._given_back
            raise
        return claimed

    def _record_and_claim(
        self,
        conn: Connection,
        outcomes: list[Outcome],
        given_back: list[int],
        limit: int,
        now: datetime,
        account_limits: dict[int, int],
    ) -> list[Delivery]:
        if outcomes:
            record_outcomes(conn, outcomes)
        if given_back:
            release_deliveries(conn, given_back, next_attempt_at=now)
        if limit == 0:
            return []
        return claim_due_deliveries(
            conn,
            now=now,
            lease_until=now + self._lease,
            limit=limit,
            per_account=2 * self._per_host,
            account_limits=account_limits,
        )

    def _start(self, delivery: Delivery, origin: Origin | None) -> None:
        if origin is not None:
            self._load[origin] += 1
        task = asyncio.create_task(self._deliver(delivery, origin), name=f"callback-{delivery.id}")
        self._in_flight[delivery.id] = (delivery, origin, task)

    async def _deliver(self, delivery: Delivery, origin: Origin | None) -> None:
        try:
            started = self._clock.monotonic()
            outcome = await self._attempt(delivery, origin)
            if origin is not None:
                if outcome.delivered and self._clock.monotonic() - started <= FAST_ANSWER_SECONDS:
                    if len(self._fast) >= FAST_ORIGINS:
                        self._fast.clear()
                    self._fast.add(origin)
                else:
                    self._fast.discard(origin)
                    self._shorten_queue(origin)
            # Only now: `_exchange` swaps the list while attempts are awaited.
            self._results.append((delivery, outcome))
            if outcome.retry_at is not None:
                self._put_off(outcome.retry_at)
            # Logged when known, so the log throttle counts the attempt at its own time
            # (not when a later pass writes it down), and a line is never later than its row.
            _log_outcome(delivery, origin, outcome, self._retry_log)
        finally:
            del self._in_flight[delivery.id]
            if origin is not None:
                self._load[origin] -= 1
                if not self._load[origin]:
                    del self._load[origin]
                queue = self._waiting.get(origin)
                if queue:
                    self._start(queue.popleft(), origin)
                    if not queue:
                        del self._waiting[origin]
            if not self._caught_up:
                # Rows may be waiting for the slot this attempt freed.
                self._wake.set()
            elif self._write_down is None:
                # Nothing waits: the results are written down with the next claim (the
                # next record committed), and within `WRITE_DOWN_SECONDS` at the latest.
                self._write_down = asyncio.get_running_loop().call_later(
                    self._write_down_seconds, self._wake.set
                )

    async def _attempt(self, delivery: Delivery, origin: Origin | None) -> Outcome:
        body = delivery.payload.encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            # A compressed answer could inflate past the read limit inside one chunk.
            "Accept-Encoding": "identity",
            "X-Ivrcast-Uuid": delivery.uuid,
            "X-Ivrcast-Attempt": str(delivery.attempts + 1),
        }
        status: int | None = None
        try:
            if delivery.secret:
                secret = self._open(delivery.secret)
                timestamp = int(self._clock.now().timestamp())
                headers[HEADER] = sign(body, secret, timestamp=timestamp)
            async with asyncio.timeout(self._timeout):
                target = self._check(delivery.url)
                resolved = await self._resolutions.resolve(target)
                try:
                    answer = await self._poster.post(
                        resolved,
                        headers,
                        body,
                        max_answer_bytes=self._max_response_bytes,
                        now=self._clock.monotonic(),
                    )
                except BaseException:
                    # Perhaps the host moved: the next attempt resolves it again.
                    self._resolutions.forget(target)
                    raise
                status = answer.status_code
        except TimeoutError:
            error = f"no complete answer within {self._timeout:g} s"
        except (UrlNotAllowed, UnresolvableHost, SecretUnreadable) as exc:
            error = exc.message
        except PostFailed as exc:
            error = f"{type(exc).__name__}: {exc.message}"
        else:
            if answer.is_success:
                return Outcome(delivery.id, delivery.url, status, self._clock.now())
            error = _describe_answer(answer)
        now = self._clock.now()
        retry_at = self._backoff.next_attempt_at(
            delivery.attempts + 1, queued_at=delivery.created_at, now=now, rng=self._rng
        )
        return Outcome(delivery.id, delivery.url, status, now, error=error, retry_at=retry_at)

    def _open(self, stored: str) -> str:
        """The plaintext of a stored callback secret, decrypted once per stored value: an
        AES-GCM open and a key derivation per attempt were measurable in the drain's
        profile. A rotated secret is a new stored value; the cache holds what the
        accounts hold, and is emptied should it outgrow `OPENED_SECRETS`."""
        opened = self._opened.get(stored)
        if opened is None:
            if len(self._opened) >= OPENED_SECRETS:
                self._opened.clear()
            opened = self._opened[stored] = open_secret(self._key, stored)
        return opened

    @functools.cached_property
    def _key(self) -> bytes:
        return self._given_key if self._given_key is not None else load_secret_key(self._settings)

    def _check(self, url: str) -> UrlTarget:
        """`netguard.check_url` once per URL, not per attempt: an account's records all go
        to one URL. What needs DNS is still checked at each attempt (`resolve_checked`)."""
        target = self._checked.get(url)
        if target is None:
            if len(self._checked) >= CHECKED_URLS:
                self._checked.clear()
            target = self._checked[url] = check_url(url)
        return target

    def _origin(self, url: str) -> Origin | None:
        try:
            target = self._check(url)
        except UrlNotAllowed:
            return None
        return Origin(target.url.scheme, target.host, target.port)


def _caught_up(
    claimed: list[Delivery], offered: int, account_limits: dict[int, int], per_account: int
) -> bool:
    """Whether a claim left nothing due that it had room for: fewer rows than `offered`,
    and fewer for each account than its room (an account with no room may have rows due
    that wait for its origin's slots)."""
    if len(claimed) >= offered or any(room <= 0 for room in account_limits.values()):
        return False
    taken = Counter(delivery.account_id for delivery in claimed)
    return all(n < account_limits.get(account, per_account) for account, n in taken.items())


def _release(conn: Connection, ids: list[int], at: datetime) -> None:
    release_deliveries(conn, ids, next_attempt_at=at)


def _describe_answer(answer: Answer) -> str:
    code = f"HTTP {answer.status_code} {answer.reason}".rstrip()
    if answer.status_code in _REDIRECTS:
        return f"{code} to {answer.location!r}: redirects are not followed"
    text = answer.body[:200].decode("utf-8", "replace").strip()
    return f"{code}: {text}" if text else code


def _log_outcome(
    delivery: Delivery, origin: Origin | None, outcome: Outcome, retry_log: LogThrottle
) -> None:
    """`origin`: the delivery's, as worked out when it was claimed."""
    kind = "delivered" if outcome.delivered else "retry" if outcome.retry_at else "dead"
    extra = {
        "event": f"callback_{kind}",
        "delivery_id": delivery.id,
        "call_uuid": delivery.uuid,
        "account_id": delivery.account_id,
        "attempt": delivery.attempts + 1,
        "status_code": outcome.status_code,
    }
    if outcome.delivered:
        logger.debug("callback delivered", extra=extra)
    elif outcome.retry_at:
        # By origin, never the whole URL: signed URLs carry secrets in their query.
        target = (
            "an unusable URL"
            if origin is None
            else f"{origin.scheme}://{origin.host}:{origin.port}"
        )
        suppressed = retry_log.admit(target)
        if suppressed is not None:
            logger.info(
                "callback failed, will retry: %s (%d more failures for %s since the last line)",
                outcome.error,
                suppressed,
                target,
                extra={**extra, "suppressed": suppressed},
            )
    else:
        logger.warning("callback dead after its maximum age: %s", outcome.error, extra=extra)
