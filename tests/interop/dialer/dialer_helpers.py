"""Helpers for dialer tests: settings, seeding accounts, voices and tasks, and waiting
on rows (never on the clock)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ivrcast.clock import Clock
from ivrcast.config import Settings
from ivrcast.dialer.service import run_dialer
from ivrcast.rtp.g711 import encode_alaw, encode_ulaw
from ivrcast.store.accounts import create_account
from ivrcast.store.engine import Database
from ivrcast.store.tables import FINAL_STATES, call_records, calls
from ivrcast.store.tasks import NewTask, create_task
from ivrcast.store.voices import insert_voice

ALWAYS_OPEN = {"window": "00:00-24:00"}


def settings_for(
    database_url: str,
    data_dir: Path,
    *,
    trunks: Sequence[dict[str, Any]] = (),
    demo: str = "auto",
    **dialer: Any,
) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": data_dir,
            "database_url": database_url,
            "demo": demo,
            "countries": {code: ALWAYS_OPEN for code in ("id", "in", "ph", "mx", "co", "tha", "vn")},
            "trunks": list(trunks),
            "dialer": {"poll_interval": 0.05, "heartbeat_seconds": 1.0, **dialer},
        }
    )


def tone(seconds: float) -> tuple[bytes, bytes]:
    samples = [int(6000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(int(seconds * 8000))]
    return encode_ulaw(samples), encode_alaw(samples)


def seed_account(
    db: Database,
    appid: str = "acme",
    *,
    max_concurrency: int = 1000,
    callback_url: str | None = "http://127.0.0.1:9/cb",
) -> tuple[int, int]:
    """An account and a voice; returns (account_id, voice_id)."""
    now = datetime.now(UTC)
    pcmu, pcma = tone(0.5)
    with db.write() as conn:
        account = create_account(
            conn,
            appid=appid,
            accesskey_hash="0" * 64,
            now=now,
            callback_url=callback_url,
            max_concurrency=max_concurrency,
        )
        voice = insert_voice(
            conn,
            account_id=account.id,
            name="hello",
            source_url=None,
            source_format="wav",
            source_bytes=len(pcmu),
            duration_ms=500,
            pcmu=pcmu,
            pcma=pcma,
            now=now,
        )
    return account.id, voice.id


def submit(
    db: Database,
    account_id: int,
    voice_id: int,
    numbers: Sequence[str],
    *,
    nationcode: str = "id",
    todayonly: int = 2,
    waittime: int = 10,
    conntime: int = 5,
    userkey: bool = False,
    disnumber: str | None = None,
    now: datetime | None = None,
    local_day: date | None = None,
) -> str:
    now = now or datetime.now(UTC)
    with db.write() as conn:
        return create_task(
            conn,
            NewTask(
                account_id=account_id,
                nationcode=nationcode,
                voice_id=voice_id,
                numbers=list(numbers),
                userkey=userkey,
                todayonly=todayonly,
                waittime=waittime,
                conntime=conntime,
                disnumber=disnumber,
                chengshudu="",
                customuuid="",
                duplicates=0,
                invalid=0,
                local_day=local_day or now.date(),
            ),
            now=now,
        )


def id_numbers(count: int, *, start: int = 0, last_digit: str | None = None) -> list[str]:
    """Distinct Indonesian mobile numbers in E.164."""
    out = []
    for n in range(start, start + count):
        body = f"{n:07d}"
        if last_digit is not None:
            body = f"{n:06d}{last_digit}"
        out.append(f"+62812{body}")
    return out


def count_final(db: Database, task_id: str | None = None) -> int:
    query = select(func.count()).select_from(calls).where(calls.c.status.in_(FINAL_STATES))
    if task_id is not None:
        query = query.where(calls.c.task_id == task_id)
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def call_rows(db: Database, task_id: str | None = None) -> list[dict[str, Any]]:
    query = select(calls).order_by(calls.c.id)
    if task_id is not None:
        query = query.where(calls.c.task_id == task_id)
    with db.read() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def record_counts(db: Database) -> dict[int, int]:
    with db.read() as conn:
        rows = conn.execute(
            select(call_records.c.call_id, func.count()).group_by(call_records.c.call_id)
        )
        return {call_id: n for call_id, n in rows}


async def wait_until(condition: Callable[[], bool], limit: float, what: str) -> None:
    """Poll `condition` (off the loop: it may query the database) until true."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not await asyncio.to_thread(condition):
        if loop.time() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_dialer(
    settings: Settings, *, clock: Clock | None = None
) -> AsyncIterator[asyncio.Event]:
    """Run the dialer in this event loop; stops it gracefully on exit."""
    stop = asyncio.Event()
    started = asyncio.Event()
    task = asyncio.create_task(run_dialer(settings, clock=clock, stop=stop, ready=started.set))
    waiter = asyncio.create_task(started.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise RuntimeError("the dialer returned before it was ready")
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
