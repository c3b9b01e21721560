"""Call rows as a submission writes them: UUIDv7 ids and the bulk insert, on both engines."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from factories import add_account, add_task, add_voice
from ivrcast.store.engine import Database
from ivrcast.store.ids import time_ordered_uuids
from ivrcast.store.tables import calls

NOW = datetime(2026, 11, 26, 3, 4, 5, 678901, tzinfo=UTC)


def test_uuids_are_version_7_in_order_and_distinct() -> None:
    batch = time_ordered_uuids(20_000, NOW)
    assert batch == sorted(batch)
    assert len(set(batch)) == 20_000
    for text in (batch[0], batch[16_384], batch[-1]):
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, text)
        assert parsed.int >> 80 == int(NOW.timestamp() * 1000)
    assert time_ordered_uuids(3, NOW) != time_ordered_uuids(3, NOW)  # random tails


@pytest.mark.parametrize("counts", [(3, 5000, 70_000, 2), (70_000, 5000)])
def test_each_uuid_carries_its_index_as_counter(counts: tuple[int, ...]) -> None:
    """The counter texts are kept between batches (and only so many of them): in
    batches of any size, in any order, uuid i of a batch carries counter i."""
    for count in counts:
        batch = time_ordered_uuids(count, NOW)
        counters = [(uuid.UUID(text).int >> 64) & ((1 << 12) - 1) for text in batch]
        low = [(uuid.UUID(text).int >> 48) & ((1 << 14) - 1) for text in batch]
        assert [(high << 14) | rest for high, rest in zip(counters, low, strict=True)] == list(
            range(count)
        )


def test_a_batch_made_in_parts_continues_its_counter() -> None:
    """`create_task_streamed` makes its ids a block at a time, as the numbers arrive."""
    parts = [time_ordered_uuids(512, NOW, first=first) for first in (0, 512, 1024)]
    batch = [text for part in parts for text in part]
    assert batch == sorted(batch)
    assert len(set(batch)) == len(batch)
    high = [(uuid.UUID(text).int >> 64) & ((1 << 12) - 1) for text in batch]
    low = [(uuid.UUID(text).int >> 48) & ((1 << 14) - 1) for text in batch]
    assert [(h << 14) | rest for h, rest in zip(high, low, strict=True)] == list(range(1536))


def test_create_task_writes_every_call_with_its_values(database: Database) -> None:
    with database.write() as conn:
        account = add_account(conn, "a", now=NOW)
        voice_id = add_voice(conn, account.id, now=NOW)
        numbers = [f"+62812{i:08d}" for i in range(3000)]
        task_id = add_task(
            conn,
            account.id,
            voice_id,
            numbers,
            now=NOW,
            local_day=date(2026, 11, 26),
            todayonly=1,
            conntime=30,
        )
    with database.read() as conn:
        rows = conn.execute(select(calls).order_by(calls.c.id)).all()
    assert [row.number for row in rows] == numbers
    assert {(r.task_id, r.account_id, r.nationcode, r.status, r.round) for r in rows} == {
        (task_id, account.id, "id", "queued", 1)
    }
    assert {row.queued_at for row in rows} == {NOW}
    assert [row.uuid for row in rows] == sorted(row.uuid for row in rows)
