"""A receiver that keeps failing writes a bounded number of "will retry" lines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from callback_receiver import (
    Answer,
    Receiver,
)

from callback_world import T0, finish_task, make_account, outbox_rows
from ivrcast.callbacks.sender import RETRY_LOG_INTERVAL, CallbackSender
from ivrcast.clock import FrozenClock
from ivrcast.config import Settings
from ivrcast.store.engine import Database
from waiting import wait_for

SETTINGS = Settings.model_validate(
    {
        "security": {"allow_private_urls": True},
        "callbacks": {
            "timeout_seconds": 1.0,
            "backoff_base_seconds": 1.0,
            "backoff_cap_seconds": 2.0,
            "poll_seconds": 0.02,
        },
    }
)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def receiver(clock: FrozenClock) -> Iterator[Receiver]:
    receiver = Receiver(now=lambda: clock.now().timestamp())
    receiver.script = lambda _index, _path: Answer(status=500, body=b"down")
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


def all_attempted(db: Database, attempts: int) -> bool:
    return all(row["attempts"] == attempts for row in outbox_rows(db))


async def test_failures_are_logged_once_per_origin_per_interval(
    database: Database, clock: FrozenClock, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    account = make_account(database, "a", callback_url=receiver.url())
    finish_task(database, account, 20)
    sender = CallbackSender(SETTINGS, database, clock=clock)
    with caplog.at_level(logging.INFO, logger="ivrcast.callbacks.sender"):
        async with running(sender):
            await wait_for(lambda: all_attempted(database, 1), "all_attempted(database, 1)")
            clock.advance(10)  # every retry is due, still within the log interval
            await wait_for(lambda: all_attempted(database, 2), "all_attempted(database, 2)")
            clock.advance(RETRY_LOG_INTERVAL)
            await wait_for(lambda: all_attempted(database, 3), "all_attempted(database, 3)")
    lines = [r for r in caplog.records if getattr(r, "event", "") == "callback_retry"]
    # The first failure; the first after the interval (with the 39 held back); at the
    # stop, the 19 held back since.
    assert [getattr(r, "suppressed", None) for r in lines] == [0, 39, 19]
    assert "HTTP 500 Internal Server Error: down" in lines[0].getMessage()
    assert all(receiver.url() not in r.getMessage() for r in lines)  # the origin, not the URL
