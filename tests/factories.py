"""Rows for tests, made through the store's own functions: accounts, voices and tasks.

Each factory takes an open write connection, so a test composes several in one
transaction, and has defaults for every field its assertions do not look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from ivrcast.demo_account import demo_tone
from ivrcast.store.accounts import Account, create_account
from ivrcast.store.tasks import NewTask, create_task
from ivrcast.store.voices import insert_voice
from ivrcast.voices.transcode import transcode

SILENCE_PCMU = b"\xff" * 160
"""20 ms of silence in PCMU (8000 one-byte samples a second)."""
SILENCE_PCMA = b"\xd5" * 160
"""The same 20 ms in PCMA."""


def add_account(
    conn: Connection,
    appid: str = "acme",
    *,
    now: datetime,
    accesskey_hash: str = "0" * 64,
    **fields: Any,
) -> Account:
    """An account; by default with an access key no test signs with (the hash is no
    hash of anything). `fields` are `create_account`'s other settings."""
    return create_account(conn, appid=appid, accesskey_hash=accesskey_hash, now=now, **fields)


def add_voice(
    conn: Connection,
    account_id: int,
    *,
    now: datetime,
    name: str = "v",
    pcmu: bytes = SILENCE_PCMU,
    pcma: bytes = SILENCE_PCMA,
) -> int:
    """A voice of already-encoded audio, as if a WAV of that length was uploaded;
    returns its id."""
    return insert_voice(
        conn,
        account_id=account_id,
        name=name,
        source_url=None,
        source_format="wav",
        source_bytes=len(pcmu),
        duration_ms=len(pcmu) // 8,
        pcmu=pcmu,
        pcma=pcma,
        now=now,
    ).id


def add_uploaded_voice(
    conn: Connection, account_id: int, *, now: datetime, name: str = "welcome"
) -> int:
    """A voice as an upload of the demo tone (one second of WAV) makes it, through the
    real transcoder; returns its id."""
    tone = demo_tone(seconds=1.0)
    encoded = transcode(tone)
    return insert_voice(
        conn,
        account_id=account_id,
        name=name,
        source_url=None,
        source_format=encoded.source_format,
        source_bytes=len(tone),
        duration_ms=encoded.duration_ms,
        pcmu=encoded.pcmu,
        pcma=encoded.pcma,
        now=now,
    ).id


def add_task(
    conn: Connection,
    account_id: int,
    voice_id: int,
    numbers: Sequence[str],
    *,
    now: datetime,
    local_day: date | None = None,
    nationcode: str = "id",
    userkey: bool = False,
    todayonly: int = 2,
    waittime: int = 30,
    conntime: int = 60,
    disnumber: str | None = None,
    chengshudu: str = "",
    customuuid: str = "",
    record: bool = False,
    amd: bool = False,
    amdaction: str | None = None,
) -> str:
    """A task of `numbers` (E.164, distinct), one queued call each; returns the task id.
    `local_day` is the day `todayonly` counts from, by default that of `now`."""
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
            chengshudu=chengshudu,
            customuuid=customuuid,
            duplicates=0,
            invalid=0,
            local_day=local_day or now.date(),
            record=record,
            amd=amd,
            amdaction=amdaction,
        ),
        now=now,
    )
