"""Several API processes on one database, each with its callback sender (issue 14).

Each sender has its own `Database` (its own engine and connections), as separate
`ivrcast serve --no-dialer` processes would; they race for the same backlog and post to
one real receiver on loopback. The lease outlives the test (the clock is frozen), so any
record posted twice was claimed twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from callback_receiver import Receiver

from callback_world import T0, call_uuids, finish_task, make_account, outbox_rows
from ivrcast.callbacks.sender import CallbackSender
from ivrcast.clock import FrozenClock
from ivrcast.config import Settings
from ivrcast.store.engine import Database
from waiting import wait_for

SENDERS = 4
RECORDS = 240


async def test_racing_senders_deliver_every_record_exactly_once(
    database: Database, database_url: str
) -> None:
    clock = FrozenClock(T0)
    receiver = Receiver(now=lambda: clock.now().timestamp())
    receiver.start()
    account = make_account(database, "a", callback_url=receiver.url())
    expected: set[str] = set()
    for _ in range(RECORDS // 60):
        expected |= call_uuids(database, finish_task(database, account, 60))
    # Small claims, many of them: every pass of every sender races the others.
    settings = Settings.model_validate(
        {
            "security": {"allow_private_urls": True},
            "callbacks": {"concurrency": 6, "per_host": 3, "poll_seconds": 0.01},
        }
    )
    engines = [Database(database_url) for _ in range(SENDERS)]
    senders = [CallbackSender(settings, db, clock=clock) for db in engines]
    stop = asyncio.Event()
    runs = [
        asyncio.create_task(sender.run(stop), name=f"sender-{index}")
        for index, sender in enumerate(senders)
    ]
    try:
        await wait_for(
            lambda: all(row["status"] == "delivered" for row in outbox_rows(database)),
            "every record delivered",
            limit=60,
        )
    finally:
        stop.set()
        await asyncio.gather(*runs)
        for db in engines:
            db.dispose()
        receiver.close()

    per_uuid = Counter(received.uuid for received in receiver.received)
    assert set(per_uuid) == expected
    assert [uuid for uuid, n in per_uuid.items() if n != 1] == []
    assert {row["attempts"] for row in outbox_rows(database)} == {1}
    assert all(received.signature_error is None for received in receiver.received)
