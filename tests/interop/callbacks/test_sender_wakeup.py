"""The callback sender woken by commits instead of its poll, against a real receiver.

The poll is set to a minute and every wait here is ten seconds at most: a record that
arrives was posted because its commit woke the sender, not because the poll came round.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from callback_receiver import Answer, Receiver
from sqlalchemy import select, text

from callback_world import T0, finish_task, make_account, outbox_rows, set_callback
from ivrcast.callbacks.sender import CallbackSender
from ivrcast.clock import FrozenClock, SystemClock
from ivrcast.config import Settings
from ivrcast.store.accounts import Account
from ivrcast.store.engine import Database
from ivrcast.store.outbox import requeue_deliveries
from ivrcast.store.outbox_wakeup import CHANNEL, OutboxListener, this_process
from ivrcast.store.tables import call_records
from waiting import wait_for, wait_for_in_thread

POLL_SECONDS = 60.0
WITHIN = 10.0
BURST = 1000
TESTS = Path(__file__).parents[2]
_elsewhere = itertools.count(5_000_000)


def settings(**callbacks: float) -> Settings:
    return Settings.model_validate(
        {
            "security": {"allow_private_urls": True},
            "callbacks": {
                "poll_seconds": POLL_SECONDS,
                "timeout_seconds": 2.0,
                "backoff_base_seconds": 1.0,
                "backoff_cap_seconds": 1.0,
                **callbacks,
            },
        }
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.close()


@contextlib.asynccontextmanager
async def running(sender: CallbackSender) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop), name="sender-under-test")
    try:
        yield
    finally:
        stop.set()
        await task


async def idle(sender: CallbackSender, db: Database, delivered: int) -> None:
    """Until `delivered` rows are written down as delivered: the pass that wrote down
    the last of them found nothing more to do, and the sender sleeps for the poll."""
    await wait_for_in_thread(
        lambda: sum(row["status"] == "delivered" for row in outbox_rows(db)) >= delivered,
        f"{delivered} deliveries written down",
        limit=WITHIN,
    )


ANOTHER_PROCESS = """
import itertools
import sys
from types import SimpleNamespace

import callback_world
from callback_world import call_uuids, finish_task
from ivrcast.store.engine import Database

# Numbers (and voice names) this test's own process does not use.
callback_world._numbers = itertools.count(int(sys.argv[3]))
db = Database(sys.argv[1])
print(*call_uuids(db, finish_task(db, SimpleNamespace(id=int(sys.argv[2])), 1)))
db.dispose()
"""


async def commit_in_another_process(url: str, account: Account) -> str:
    """A record committed by another process (as a dialer node's); returns its uuid."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ANOTHER_PROCESS,
        url,
        str(account.id),
        str(next(_elsewhere)),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode().strip()


async def test_a_record_committed_while_idle_is_posted_at_once(
    database: Database, receiver: Receiver
) -> None:
    account = make_account(database, "a", callback_url=receiver.url())
    finish_task(database, account, 1)
    sender = CallbackSender(settings(), database, clock=FrozenClock(T0))
    async with running(sender):
        await idle(sender, database, 1)
        # Committed from a worker thread, as the dialer's database thread does.
        await asyncio.to_thread(finish_task, database, account, 1)
        await wait_for(lambda: len(receiver.received) == 2, "the second record", limit=WITHIN)


async def test_a_replay_wakes_the_sender(database: Database, receiver: Receiver) -> None:
    account = make_account(database, "a", callback_url=receiver.url())
    finish_task(database, account, 1)
    sender = CallbackSender(settings(), database, clock=FrozenClock(T0))
    async with running(sender):
        await idle(sender, database, 1)
        with database.write() as conn:
            record_ids = list(conn.scalars(select(call_records.c.id)))
            requeue_deliveries(conn, now=T0, record_ids=record_ids)
        await wait_for(lambda: len(receiver.received) == 2, "the replayed record", limit=WITHIN)


async def test_a_failed_attempt_is_retried_when_due_not_at_the_poll(
    database: Database,
) -> None:
    refused_once = Receiver(lambda index, _path: Answer(status=503 if index == 0 else 200))
    refused_once.start()
    try:
        # A real clock: the retry is due a second after the failure, the poll a minute.
        clock = SystemClock()
        account = make_account(database, "a", callback_url=refused_once.url(), now=clock.now())
        finish_task(database, account, 1, now=clock.now())
        sender = CallbackSender(settings(), database, clock=clock)
        async with running(sender):
            await wait_for(lambda: len(refused_once.received) == 2, "the retry", limit=WITHIN)
    finally:
        refused_once.close()


async def test_a_commit_in_another_process_wakes_the_sender(
    database: Database, receiver: Receiver
) -> None:
    account = make_account(database, "a", callback_url=receiver.url())
    sender = CallbackSender(settings(), database, clock=FrozenClock(T0))
    async with running(sender):
        await wait_for(lambda: sender.asleep, "the sender asleep")
        uuid = await commit_in_another_process(database.url, account)
        await wait_for(lambda: len(receiver.received) == 1, "the record", limit=WITHIN)
    assert receiver.received[0].uuid == uuid


@pytest.mark.postgres
async def test_a_dropped_listener_reconnects_and_misses_nothing(
    postgres_url: str, receiver: Receiver
) -> None:
    with opened(postgres_url) as database:
        await _dropped_listener(database, postgres_url, receiver)


async def _dropped_listener(database: Database, database_url: str, receiver: Receiver) -> None:
    account = make_account(database, "a", callback_url=receiver.url())
    sender = CallbackSender(settings(), database, clock=FrozenClock(T0))
    listener = sender.wakeup.listener
    assert listener is not None
    async with running(sender):
        await asyncio.wait_for(listener.connected.wait(), WITHIN)
        dropped = listener.backend_pid
        with database.write() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
        # Committed while the session may be down: the reconnect rings for it.
        await commit_in_another_process(database_url, account)
        await wait_for(lambda: len(receiver.received) == 1, "the first record", limit=WITHIN)
        await wait_for(
            lambda: listener.backend_pid not in (None, dropped), "a new session", limit=WITHIN
        )
        await commit_in_another_process(database_url, account)
        await wait_for(lambda: len(receiver.received) == 2, "the second record", limit=WITHIN)


async def test_a_burst_of_commits_makes_a_handful_of_passes(database: Database) -> None:
    # The receiver holds every answer, so no finished attempt wakes the sender: the
    # passes it makes, the commits made.
    holding = Receiver(lambda _index, _path: Answer(hold=True))
    holding.start()
    try:
        account = make_account(database, "a", callback_url=None)
        task_id = finish_task(database, account, BURST)
        set_callback(database, "a", callback_url=holding.url())
        with database.read() as conn:
            record_ids = list(
                conn.scalars(select(call_records.c.id).where(call_records.c.task_id == task_id))
            )
        sender = CallbackSender(settings(), database, clock=FrozenClock(T0))
        listener = sender.wakeup.listener
        async with running(sender):
            if listener is not None:
                await asyncio.wait_for(listener.connected.wait(), WITHIN)
            await wait_for(lambda: sender.passes >= 1 and sender.asleep, "the sender asleep")
            before = sender.passes
            notified = listener.notices if listener is not None else 0
            # One transaction per record, back to back, the loop held meanwhile: on
            # PostgreSQL a thousand notifications wait for the listener too.
            for record_id in record_ids:
                with database.write() as conn:
                    requeue_deliveries(conn, now=T0, record_ids=[record_id])
            await wait_for(lambda: len(holding.received) >= 1, "the first post", limit=WITHIN)
            if listener is not None:
                await wait_for(
                    lambda: listener.notices >= notified + BURST - 1,
                    "every notification read",
                    limit=WITHIN,
                )
            await wait_for(lambda: sender.asleep, "the sender asleep again", limit=WITHIN)
            made = sender.passes - before
            holding.release.set()
    finally:
        holding.close()
    assert 1 <= made <= 5, made


@contextlib.contextmanager
def opened(url: str) -> Iterator[Database]:
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()


async def test_a_caught_up_sender_writes_finished_attempts_down_with_its_next_claim(
    database: Database,
) -> None:
    """Once the claim has taken every due row, the answers (spread over 0.3 s) make no
    pass of their own: the next pass, woken by the next commit, writes them all down."""
    spread = Receiver(lambda index, _path: Answer(delay=0.02 * index))
    spread.start()
    try:
        account = make_account(database, "a", callback_url=spread.url())
        sender = CallbackSender(
            settings(per_host=16), database, clock=FrozenClock(T0), write_down_seconds=3600
        )
        listener = sender.wakeup.listener
        async with running(sender):
            if listener is not None:
                await asyncio.wait_for(listener.connected.wait(), WITHIN)
            await wait_for(lambda: sender.passes >= 1 and sender.asleep, "the sender asleep")
            before = sender.passes
            finish_task(database, account, 16)
            await wait_for(lambda: sender.held_results == 16, "16 answers", limit=WITHIN)
            assert sender.passes - before == 1  # the claim, and none per answer
            assert not any(row["status"] == "delivered" for row in outbox_rows(database))
            finish_task(database, account, 1)
            await idle(sender, database, 16)
            assert sender.passes - before == 2
    finally:
        spread.close()


@pytest.mark.postgres
async def test_the_listener_passes_over_its_own_process_notifications(postgres_url: str) -> None:
    """This process's commits ring its senders directly; their notification, arriving
    later, must not ring again (a second pass), while another process's must."""
    rings = 0

    def ring() -> None:
        nonlocal rings
        rings += 1

    listener = OutboxListener(postgres_url, ring)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        await asyncio.wait_for(listener.connected.wait(), WITHIN)
        rung = rings
        with opened(postgres_url) as database, database.write() as conn:
            conn.exec_driver_sql(f"NOTIFY {CHANNEL}, '{this_process()}'")
            conn.exec_driver_sql(f"NOTIFY {CHANNEL}, '0123456789abcdef:1'")
        await wait_for(lambda: listener.notices == 2, "both notifications", limit=WITHIN)
        assert rings == rung + 1
    finally:
        stop.set()
        await task
