"""The callback sender against a real HTTP receiver on loopback, on SQLite and PostgreSQL.

Retries are made due by moving a `FrozenClock` rather than by waiting out the backoff;
the receiver's real answers (refused connections, slow answers, timeouts) are real.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from callback_receiver import (
    Answer,
    Receiver,
)
from sqlalchemy import text

from callback_world import (
    T0,
    call_uuids,
    finish_task,
    make_account,
    outbox_rows,
    set_callback,
)
from ivrcast.callbacks.sender import LEASE_MARGIN_SECONDS, QUEUE_DEPTH, CallbackSender
from ivrcast.clock import FrozenClock
from ivrcast.config import Settings
from ivrcast.store.engine import Database
from waiting import wait_for


def settings(*, allow_private: bool = True, **callbacks: Any) -> Settings:
    return Settings.model_validate(
        {
            "security": {"allow_private_urls": allow_private},
            "callbacks": {
                "timeout_seconds": 1.0,
                "backoff_base_seconds": 1.0,
                "backoff_cap_seconds": 2.0,
                "poll_seconds": 0.02,
                **callbacks,
            },
        }
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def receiver(clock: FrozenClock) -> Iterator[Receiver]:
    receiver = Receiver(now=lambda: clock.now().timestamp())
    receiver.start()
    yield receiver
    receiver.close()


@contextlib.asynccontextmanager
async def running(sender: CallbackSender) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop), name="sender-under-test")
    try:
        yield task
    finally:
        stop.set()
        if not task.done():
            await task


def statuses(db: Database) -> Counter[str]:
    return Counter(str(row["status"]) for row in outbox_rows(db))


def settled(db: Database, *, attempts: int) -> bool:
    """Every row delivered, or failed `attempts` times and waiting for its retry."""
    return all(
        row["status"] == "delivered" or row["attempts"] == attempts for row in outbox_rows(db)
    )


async def test_every_record_arrives_through_errors_an_outage_and_slow_answers(
    database: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    account = make_account(database, "a", callback_url=receiver.url())
    expected = call_uuids(database, finish_task(database, account, 20))
    outage = False

    def script(index: int, _path: str) -> Answer:
        if index < 5:
            return Answer(status=500, body=b"try later")
        if index < 7:
            return Answer(delay=1.5)  # beyond the 1 s timeout: received, yet retried
        return Answer(delay=0.05 if not outage else 0.0)

    receiver.script = script
    sender = CallbackSender(settings(per_host=4), database, clock=clock)
    async with running(sender):
        await wait_for(lambda: settled(database, attempts=1), "settled(database, attempts=1)")
        assert statuses(database) == {"delivered": 13, "pending": 7}

        receiver.stop()
        outage = True
        clock.advance(10)
        await wait_for(lambda: settled(database, attempts=2), "settled(database, attempts=2)")
        failed = [row for row in outbox_rows(database) if row["status"] == "pending"]
        assert len(failed) == 7
        assert all("ConnectError" in str(row["last_error"]) for row in failed)

        receiver.start()
        clock.advance(10)
        await wait_for(
            lambda: statuses(database) == {"delivered": 20},
            'statuses(database) == {"delivered": 20}',
        )

    assert receiver.uuids() == expected
    by_uuid: dict[str, set[bytes]] = {}
    for received in receiver.received:
        by_uuid.setdefault(received.uuid, set()).add(received.body)
    # A duplicate is the same record again, byte for byte.
    assert all(len(bodies) == 1 for bodies in by_uuid.values())
    counts = Counter(received.uuid for received in receiver.received)
    assert sum(1 for n in counts.values() if n > 1) == 7
    assert all(received.signature_error is None for received in receiver.received)
    attempts = {row["attempts"] for row in outbox_rows(database)}
    assert attempts == {1, 3}


async def test_a_restart_with_deliveries_in_flight_loses_none(
    database: Database, database_url: str, clock: FrozenClock, receiver: Receiver
) -> None:
    account = make_account(database, "a", callback_url=receiver.url())
    expected = call_uuids(database, finish_task(database, account, 10))
    receiver.script = lambda index, _path: Answer(hold=index < 4)
    config = settings(per_host=4, timeout_seconds=20.0)

    first = asyncio.create_task(CallbackSender(config, database, clock=clock).run(asyncio.Event()))
    await wait_for(lambda: receiver.active == 4, "receiver.active == 4")
    in_flight = receiver.uuids()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    # The first sender's claims (in flight or waiting behind them) stay leased.
    leased = [row for row in outbox_rows(database) if row["next_attempt_at"] > clock.now()]
    assert 4 <= len(leased) < 10

    # A new process: its own engine on the same database.
    restarted = Database(database_url)
    try:
        sender = CallbackSender(config, restarted, clock=clock)
        async with running(sender):
            await wait_for(
                lambda: statuses(database)["delivered"] == 10 - len(leased),
                'statuses(database)["delivered"] == 10 - len(leased)',
            )
            clock.advance((QUEUE_DEPTH + 1) * 20 + LEASE_MARGIN_SECONDS)  # the first lease ends
            await wait_for(
                lambda: statuses(database) == {"delivered": 10},
                'statuses(database) == {"delivered": 10}',
            )
    finally:
        restarted.dispose()
    assert receiver.uuids() == expected
    resent = Counter(r.uuid for r in receiver.received if r.uuid in in_flight)
    assert set(resent.values()) == {2}


@pytest.mark.postgres
async def test_a_dropped_database_connection_costs_the_sender_one_pass(
    postgres_url: str, clock: FrozenClock, receiver: Receiver
) -> None:
    database = Database(postgres_url)
    try:
        account = make_account(database, "a", callback_url=receiver.url())
        finish_task(database, account, 3)
        async with running(CallbackSender(settings(), database, clock=clock)):
            await wait_for(lambda: statuses(database) == {"delivered": 3}, "3 delivered")
            # The sender's connection among them: it does not check one before use.
            with database.write() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            finish_task(database, account, 3)
            await wait_for(lambda: statuses(database) == {"delivered": 6}, "6 delivered")
    finally:
        database.dispose()


async def test_the_receiver_verifies_every_signature_with_the_current_secret(
    database: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    account = make_account(database, "a", callback_url=receiver.url(), secret="first")
    finish_task(database, account, 2)
    receiver.secret = "first"
    sender = CallbackSender(settings(), database, clock=clock)
    assert await sender.deliver_due() == 2

    set_callback(database, "a", callback_secret="rotated")
    receiver.secret = "rotated"
    finish_task(database, account, 2)
    clock.advance(60)
    assert await sender.deliver_due() == 2

    set_callback(database, "a", callback_secret=None)
    receiver.secret = None
    finish_task(database, account, 1)
    assert await sender.deliver_due() == 1
    await sender.aclose()

    assert len(receiver.received) == 5
    assert [r.signature_error for r in receiver.received] == [None] * 5
    assert "X-Ivrcast-Signature" not in receiver.received[-1].headers
    timestamps = [r.headers["X-Ivrcast-Signature"].split(",")[0] for r in receiver.received[:4]]
    assert timestamps[0] == f"t={int(T0.timestamp())}"
    assert timestamps[3] == f"t={int(T0.timestamp()) + 60}"


async def test_a_tampered_body_fails_the_receivers_check(clock: FrozenClock) -> None:
    from ivrcast.callbacks.signing import InvalidSignature, sign, verify

    body = b'{"uuid":"u","billsec":10}'
    header = sign(body, "s3cret", timestamp=int(T0.timestamp()))
    now = T0.timestamp()
    assert verify(header, body, "s3cret", now=now) == int(now)
    with pytest.raises(InvalidSignature):
        verify(header, body.replace(b"10", b"99"), "s3cret", now=now)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_callback_urls_on_private_addresses_are_refused(
    database: Database, clock: FrozenClock, receiver: Receiver, host: str
) -> None:
    account = make_account(database, "a", callback_url=receiver.url(host=host))
    finish_task(database, account, 1)
    sender = CallbackSender(settings(allow_private=False), database, clock=clock)
    assert await sender.deliver_due() == 1
    await sender.aclose()
    (row,) = outbox_rows(database)
    assert receiver.received == []
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert "loopback address" in str(row["last_error"])


async def test_a_stalled_receiver_does_not_hold_up_other_accounts(
    database: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    good = Receiver(now=lambda: clock.now().timestamp())
    good.start()
    try:
        receiver.script = lambda _index, _path: Answer(hold=True)
        hostile = make_account(database, "hostile", callback_url=receiver.url())
        fine = make_account(database, "fine", callback_url=good.url())
        # The hostile account's records are older: first in line.
        finish_task(database, hostile, 30, now=T0 - timedelta(seconds=1))
        finish_task(database, fine, 20)
        sender = CallbackSender(
            settings(concurrency=6, per_host=2, timeout_seconds=30.0), database, clock=clock
        )
        async with running(sender):
            await wait_for(lambda: len(good.received) == 20, "len(good.received) == 20", limit=5)
            await wait_for(
                lambda: statuses(database)["delivered"] == 20,
                'statuses(database)["delivered"] == 20',
                limit=5,
            )
            assert receiver.active == 2
            assert receiver.max_active == 2
            receiver.release.set()
            await wait_for(
                lambda: statuses(database) == {"delivered": 50},
                'statuses(database) == {"delivered": 50}',
                limit=10,
            )
        assert good.max_active <= 2
    finally:
        good.close()


async def test_a_receiver_that_turns_slow_gives_back_its_longer_queue(
    database: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    receiver.script = lambda index, _path: Answer(hold=index >= 2)
    account = make_account(database, "a", callback_url=receiver.url())
    finish_task(database, account, 30)

    def due_untried() -> int:
        return sum(
            1
            for row in outbox_rows(database)
            if row["attempts"] == 0 and row["next_attempt_at"] <= clock.now()
        )

    sender = CallbackSender(settings(per_host=2, timeout_seconds=1.0), database, clock=clock)
    async with running(sender):
        # Two answers at once make the origin fast: then 2 in flight, 2 * QUEUE_DEPTH queued.
        long_queue = 30 - 2 - 2 * (1 + QUEUE_DEPTH)
        await wait_for(lambda: due_untried() == long_queue, "a long queue")
        # The held attempts time out: the rows queued beyond `per_host` go back, due
        # again and never attempted, for any sender (or account) to take.
        await wait_for(lambda: due_untried() > long_queue, "rows given back")
        receiver.release.set()


async def test_redirects_are_not_followed_and_answers_are_read_only_so_far(
    database: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    def script(_index: int, path: str) -> Answer:
        if path == "/moved":
            return Answer(status=302, headers={"Location": receiver.url("/target")})
        return Answer(status=500, body=b"E" * 5_000_000)

    receiver.script = script
    redirected = make_account(database, "r", callback_url=receiver.url("/moved"))
    verbose = make_account(database, "v", callback_url=receiver.url("/verbose"))
    finish_task(database, redirected, 1)
    finish_task(database, verbose, 1)
    sender = CallbackSender(settings(max_response_bytes=1024), database, clock=clock)
    assert await sender.deliver_due() == 2
    await sender.aclose()
    rows = {row["account_id"]: row for row in outbox_rows(database)}
    assert {r.path for r in receiver.received} == {"/moved", "/verbose"}
    assert rows[redirected.id]["last_status"] == 302
    assert "redirects are not followed" in str(rows[redirected.id]["last_error"])
    assert "/target" in str(rows[redirected.id]["last_error"])
    assert rows[verbose.id]["last_status"] == 500
    assert str(rows[verbose.id]["last_error"]).startswith("HTTP 500 Internal Server Error: EEE")
    assert len(str(rows[verbose.id]["last_error"])) < 300


async def test_a_delivery_dies_at_its_maximum_age(
    database: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    receiver.script = lambda _index, _path: Answer(status=503)
    account = make_account(database, "a", callback_url=receiver.url())
    finish_task(database, account, 1)
    config = settings(max_age_hours=1, backoff_base_seconds=300, backoff_cap_seconds=1200)
    sender = CallbackSender(config, database, clock=clock)
    while (row := outbox_rows(database)[0])["status"] == "pending":
        clock.set(row["next_attempt_at"])
        assert await sender.deliver_due() == 1
    await sender.aclose()
    assert row["status"] == "dead"
    assert row["last_status"] == 503
    # The last attempt is made at the deadline itself, not skipped.
    assert clock.now() == T0 + timedelta(hours=1)
    assert len(receiver.received) == row["attempts"]
