"""Campaigns against SIPp trunks: retry rounds (spacing on the injected clock, the same
caller ID each round), pause across two dialers, and do-not-call numbers that never
reach the trunk. SIPp's message log is the ground truth of what reached the trunk."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from dialer_helpers import (
    HERE,
    SippTrunk,
    call_rows,
    id_numbers,
    record_counts,
    running_dialer,
    seed_account,
    settings_for,
    start_sipp,
)
from sqlalchemy import select, update

from ivrcast.app import create_app
from ivrcast.clock import FrozenClock
from ivrcast.config import Settings
from ivrcast.credentials import hash_secret, load_secret_key
from ivrcast.store import dnc
from ivrcast.store.engine import Database
from ivrcast.store.tables import FINAL_STATES, accounts, call_records, tasks
from ivrcast.store.tasks import NewTask, RetryPolicy, create_task, set_task_status
from waiting import wait_for

POOL = ["622150001000", "622150001001", "622150001002", "622150001003"]
INTERVAL = timedelta(minutes=1)


async def busy_then_answer(workdir: Path, *, busy: int, calls: int) -> SippTrunk:
    """A SIPp trunk answering its first `busy` INVITEs 486, the rest 200."""
    template = (HERE / "uas_busy_then_answer.xml.in").read_text()
    scenario = workdir.parent / f"{workdir.name}.xml"
    scenario.write_text(template.replace("@BUSY@", str(busy)))
    return await start_sipp(workdir, str(scenario), calls=calls)


def submit(
    db: Database,
    account_id: int,
    voice_id: int,
    numbers: list[str],
    *,
    now: datetime,
    retry: RetryPolicy | None = None,
) -> str:
    with db.write() as conn:
        return create_task(
            conn,
            NewTask(
                account_id=account_id,
                nationcode="id",
                voice_id=voice_id,
                numbers=numbers,
                userkey=False,
                todayonly=2,
                waittime=10,
                conntime=5,
                disnumber=None,
                chengshudu="",
                customuuid="",
                duplicates=0,
                invalid=0,
                local_day=now.date(),
                retry=retry or RetryPolicy(),
            ),
            now=now,
        )


def rows_where(db: Database, task_id: str, **match: Any) -> list[dict[str, Any]]:
    return [
        row
        for row in call_rows(db, task_id)
        if all(row[key] == value for key, value in match.items())
    ]


def ended(db: Database, task_id: str, round_number: int, count: int) -> bool:
    rows = rows_where(db, task_id, round=round_number)
    return len(rows) == count and all(row["status"] in FINAL_STATES for row in rows)


def round_ended_and_next_queued(db: Database, task_id: str, round_number: int) -> bool:
    return (
        ended(db, task_id, round_number, 4)
        and len(rows_where(db, task_id, round=round_number + 1)) == 4
    )


def next_due(db: Database, task_id: str) -> datetime:
    due: datetime = max(row["due_at"] for row in rows_where(db, task_id, status="queued"))
    return due


def task_status(db: Database, task_id: str) -> str:
    with db.read() as conn:
        status: str = conn.execute(select(tasks.c.status).where(tasks.c.id == task_id)).scalar_one()
        return status


def records(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        payloads = conn.execute(select(call_records.c.payload).order_by(call_records.c.id))
        return [json.loads(p) for p in payloads.scalars()]


async def test_a_busy_number_gets_its_rounds_spaced_with_one_caller_id(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    numbers = id_numbers(4)
    sipp = await busy_then_answer(tmp_path / "sipp", busy=1000, calls=12)
    clock = FrozenClock(datetime.now(UTC))
    account_id, voice_id = seed_account(database)
    task_id = submit(
        database, account_id, voice_id, numbers, now=clock.now(),
        retry=RetryPolicy(retries=2, interval_minutes=1, on=("busy",)),
    )  # fmt: skip
    settings = settings_for(
        database_url, tmp_path, trunks=[sipp.trunk("id-main", max_cps=500, callerids=POOL)]
    )
    async with running_dialer(settings, clock=clock):
        for round_number in (1, 2):
            await wait_for(
                functools.partial(round_ended_and_next_queued, database, task_id, round_number),
                f"round {round_number} ended and the next queued",
                limit=30,
            )
            # The next round waits for its time: nothing more reached the trunk.
            assert sum(len(ids) for ids in sipp.invites().values()) == 4 * round_number
            clock.set(next_due(database, task_id))
        await wait_for(lambda: ended(database, task_id, 3, 4), "round 3 ended", limit=30)
        await wait_for(lambda: task_status(database, task_id) == "finished", "finished", limit=10)
    await sipp.finish()
    invites = sipp.invites()
    assert sorted(invites) == sorted(n.removeprefix("+") for n in numbers)
    assert all(len(ids) == 3 for ids in invites.values()), invites
    rows = call_rows(database, task_id)
    assert record_counts(database) == {row["id"]: 1 for row in rows}
    by_number: dict[str, list[dict[str, Any]]] = {}
    for record in records(database):
        by_number.setdefault(record["e164"], []).append(record)
    caller_ids = set()
    for number in numbers:
        rounds = sorted(by_number[number], key=lambda r: r["round"])
        assert [(r["round"], r["final"], r["status"]) for r in rounds] == [
            (1, False, "busy"),
            (2, False, "busy"),
            (3, True, "busy"),
        ]
        assert len({r["disnumber"] for r in rounds}) == 1
        caller_ids.add(rounds[0]["disnumber"])
        for before, after in itertools.pairwise(rounds):
            gap = datetime.fromisoformat(after["starttime_iso"]) - datetime.fromisoformat(
                before["endtime_iso"]
            )
            assert gap >= INTERVAL
    assert caller_ids <= set(POOL)


async def test_a_number_answered_on_the_second_invite_ends_completed_on_round_2(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    numbers = id_numbers(3)
    sipp = await busy_then_answer(tmp_path / "sipp", busy=3, calls=6)
    clock = FrozenClock(datetime.now(UTC))
    account_id, voice_id = seed_account(database)
    task_id = submit(
        database, account_id, voice_id, numbers, now=clock.now(),
        retry=RetryPolicy(retries=2, interval_minutes=1),
    )  # fmt: skip
    settings = settings_for(database_url, tmp_path, trunks=[sipp.trunk("id-main", max_cps=500)])
    async with running_dialer(settings, clock=clock):
        await wait_for(
            lambda: len(rows_where(database, task_id, round=2)) == 3, "round 2 queued", limit=30
        )
        clock.set(next_due(database, task_id))
        await wait_for(lambda: task_status(database, task_id) == "finished", "finished", limit=30)
    await sipp.finish()
    assert all(len(ids) == 2 for ids in sipp.invites().values())
    got = sorted((r["e164"], r["round"], r["status"], r["final"]) for r in records(database))
    assert got == sorted(
        [(n, 1, "busy", False) for n in numbers] + [(n, 2, "completed", True) for n in numbers]
    )


async def test_a_paused_task_sends_no_invite_until_resumed_on_two_dialers(
    postgres_url: str, tmp_path: Path
) -> None:
    from ivrcast.store.migrate import upgrade_to_head

    database = Database(postgres_url)
    upgrade_to_head(database)
    sipp = await busy_then_answer(tmp_path / "sipp", busy=0, calls=20)
    account_id, voice_id = seed_account(database)
    now = datetime.now(UTC)
    paused_numbers = id_numbers(10)
    paused = submit(database, account_id, voice_id, paused_numbers, now=now)
    with database.write() as conn:
        set_task_status(conn, None, paused, from_status="active", to_status="paused")
    # Submitted after the paused task: once both dialers have dialled all of it, they
    # have passed over the paused task, older, in claim round after claim round.
    active = submit(database, account_id, voice_id, id_numbers(10, start=100), now=now)
    settings = settings_for(
        postgres_url, tmp_path, trunks=[sipp.trunk("id-main", max_cps=500, max_channels=4)]
    )
    async with contextlib.AsyncExitStack() as dialers:
        await dialers.enter_async_context(running_dialer(settings))
        await dialers.enter_async_context(running_dialer(settings))
        await wait_for(lambda: ended(database, active, 1, 10), "the active task ended", limit=60)
        assert not {n.removeprefix("+") for n in paused_numbers} & set(sipp.invites())
        assert {row["status"] for row in call_rows(database, paused)} == {"queued"}
        with database.write() as conn:
            set_task_status(conn, None, paused, from_status="paused", to_status="active")
        await wait_for(lambda: ended(database, paused, 1, 10), "the resumed task ended", limit=60)
    await sipp.finish()
    invites = sipp.invites()
    assert len(invites) == 20
    assert all(len(ids) == 1 for ids in invites.values())
    assert {row["status"] for row in call_rows(database, paused)} == {"completed"}
    database.dispose()


async def play_voice(settings: Settings, database: Database, numbers: list[str]) -> str:
    """PlayVoice through the real application, as account `acme` (accesskey `key`)."""
    with database.write() as conn:
        conn.execute(
            update(accounts)
            .where(accounts.c.appid == "acme")
            .values(accesskey_hash=hash_secret(load_secret_key(settings), "key"))
        )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ivrcast") as client:
            form = {
                "service": "App.Sip_Call.PlayVoice", "appid": "acme", "accesskey": "key",
                "nationcode": "id", "destnumber": ",".join(numbers), "voicetype": "1",
                "voicefile": "hello", "todayonly": "2",
            }  # fmt: skip
            response = await client.post("/api/yunhu", data=form)
    finally:
        # ASGITransport runs no lifespan, which would stop these.
        app.state.ctx.transcoder.shutdown()
        app.state.ctx.db.dispose()
    data = response.json()["data"]
    assert (data["accepted"], data["suppressed"]) == (len(numbers) - 2, 2), data
    task_id: str = data["taskid"]
    return task_id


async def test_do_not_call_numbers_never_reach_the_trunk(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    sipp = await busy_then_answer(tmp_path / "sipp", busy=0, calls=4)
    account_id, _ = seed_account(database)
    numbers = id_numbers(8)
    now = datetime.now(UTC)
    settings = settings_for(database_url, tmp_path, trunks=[sipp.trunk("id-main", max_cps=500)])
    # Listed before submission (PlayVoice leaves them out): the account's list, the global.
    with database.write() as conn:
        dnc.add_numbers(conn, account_id, [numbers[0]], now=now)
        dnc.add_numbers(conn, dnc.GLOBAL, [numbers[7]], now=now)
    task_id = await play_voice(settings, database, numbers)
    # Listed after submission: they end `suppressed` when their turn comes.
    with database.write() as conn:
        dnc.add_numbers(conn, account_id, [numbers[2]], now=now)
        dnc.add_numbers(conn, dnc.GLOBAL, [numbers[5]], now=now)
    async with running_dialer(settings):
        await wait_for(lambda: task_status(database, task_id) == "finished", "finished", limit=30)
    await sipp.finish()
    assert sorted(sipp.invites()) == sorted(numbers[i].removeprefix("+") for i in (1, 3, 4, 6))
    statuses = {row["number"]: row["status"] for row in call_rows(database, task_id)}
    assert [statuses.get(n) for n in numbers] == [
        None, "completed", "suppressed", "completed", "completed", "suppressed", "completed", None,
    ]  # fmt: skip
    assert len(records(database)) == 6
