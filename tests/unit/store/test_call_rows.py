"""Call rows as a submission writes them: UUIDv7 ids and the bulk insert, on both engines."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import select

from ivrcast.store.accounts import create_account
from ivrcast.store.engine import Database
from ivrcast.store.ids import time_ordered_uuids
from ivrcast.store.tables import calls
from ivrcast.store.tasks import NewTask, create_task
from ivrcast.store.voices import insert_voice

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


def test_create_task_writes_every_call_with_its_values(database: Database) -> None:
    with database.write() as conn:
        account = create_account(conn, appid="a", accesskey_hash="h", now=NOW)
        voice = insert_voice(
            conn,
            account_id=account.id,
            name="v",
            source_url=None,
            source_format="wav",
            source_bytes=1,
            duration_ms=1,
            pcmu=b"\xff",
            pcma=b"\xd5",
            now=NOW,
        )
        numbers = [f"+62812{i:08d}" for i in range(3000)]
        task_id = create_task(
            conn,
            NewTask(
                account_id=account.id,
                nationcode="id",
                voice_id=voice.id,
                numbers=numbers,
                userkey=False,
                todayonly=1,
                waittime=30,
                conntime=30,
                disnumber=None,
                chengshudu="",
                customuuid="",
                duplicates=0,
                invalid=0,
                local_day=date(2026, 11, 26),
            ),
            now=NOW,
        )
    with database.read() as conn:
        rows = conn.execute(select(calls).order_by(calls.c.id)).all()
    assert [row.number for row in rows] == numbers
    assert {(r.task_id, r.account_id, r.nationcode, r.status, r.round) for r in rows} == {
        (task_id, account.id, "id", "queued", 1)
    }
    assert {row.queued_at for row in rows} == {NOW}
    assert [row.uuid for row in rows] == sorted(row.uuid for row in rows)
