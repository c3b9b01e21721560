"""The voice library's rows: named uploads and online voices cached by URL."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy.exc
from sqlalchemy import Connection, delete, func, select

from ivrcast.errors import ConflictError, NotFoundError
from ivrcast.store.tables import accounts, tasks, voices


@dataclass(frozen=True)
class VoiceInfo:
    """A voice without its audio, for lists and lookups."""

    id: int
    name: str | None
    source_url: str | None
    source_format: str
    source_bytes: int
    duration_ms: int
    created_at: datetime


class VoiceExists(ConflictError):
    """A voice with this name exists already."""


class VoiceNotFound(NotFoundError):
    """No such voice."""


class VoiceStorageFull(ConflictError):
    """The account's voice storage quota is used up."""

    def __init__(self, used: int, quota: int, *, adding: int | None = None) -> None:
        self.used = used
        self.adding = adding
        self.quota = quota
        needs = "" if adding is None else f" and this voice needs {adding} more"
        super().__init__(
            f"voice storage quota exceeded: {used} of {quota} bytes are used{needs}; "
            "ask the operator for a larger quota"
        )


_INFO = (
    voices.c.id,
    voices.c.name,
    voices.c.source_url,
    voices.c.source_format,
    voices.c.source_bytes,
    voices.c.duration_ms,
    voices.c.created_at,
)


def insert_voice(
    conn: Connection,
    *,
    account_id: int,
    name: str | None,
    source_url: str | None,
    source_format: str,
    source_bytes: int,
    duration_ms: int,
    pcmu: bytes,
    pcma: bytes,
    now: datetime,
) -> VoiceInfo:
    try:
        row = conn.execute(
            voices.insert()
            .values(
                account_id=account_id,
                name=name,
                source_url=source_url,
                source_format=source_format,
                source_bytes=source_bytes,
                duration_ms=duration_ms,
                pcmu=pcmu,
                pcma=pcma,
                created_at=now,
            )
            .returning(*_INFO)
        ).one()
    except sqlalchemy.exc.IntegrityError as exc:
        raise VoiceExists(f"name: a voice named {name!r} exists already") from exc
    return VoiceInfo(*row)


def find_voice_by_name(conn: Connection, account_id: int, name: str) -> VoiceInfo | None:
    row = conn.execute(
        select(*_INFO).where(voices.c.account_id == account_id, voices.c.name == name)
    ).one_or_none()
    return None if row is None else VoiceInfo(*row)


def find_voice_by_url(conn: Connection, account_id: int, url: str) -> VoiceInfo | None:
    row = conn.execute(
        select(*_INFO).where(voices.c.account_id == account_id, voices.c.source_url == url)
    ).one_or_none()
    return None if row is None else VoiceInfo(*row)


def list_voices(conn: Connection, account_id: int) -> list[VoiceInfo]:
    """Named voices of the account; cached online voices are not part of the library."""
    rows = conn.execute(
        select(*_INFO)
        .where(voices.c.account_id == account_id, voices.c.name.is_not(None))
        .order_by(voices.c.name)
    )
    return [VoiceInfo(*row) for row in rows]


def voice_audio(conn: Connection, voice_id: int) -> tuple[bytes, bytes]:
    """The PCMU and PCMA renditions of a voice."""
    row = conn.execute(
        select(voices.c.pcmu, voices.c.pcma).where(voices.c.id == voice_id)
    ).one_or_none()
    if row is None:
        raise VoiceNotFound(f"no voice with id {voice_id}")
    return bytes(row.pcmu), bytes(row.pcma)


def voice_audio_many(
    conn: Connection, voice_ids: Collection[int]
) -> dict[int, tuple[bytes, bytes]]:
    """The PCMU and PCMA renditions of several voices."""
    if not voice_ids:
        return {}
    rows = conn.execute(
        select(voices.c.id, voices.c.pcmu, voices.c.pcma).where(voices.c.id.in_(list(voice_ids)))
    )
    return {row.id: (bytes(row.pcmu), bytes(row.pcma)) for row in rows}


def voice_bytes_used(conn: Connection, account_id: int) -> int:
    """The bytes of audio the account's voices keep (both renditions), cached URLs included."""
    used = conn.execute(
        select(
            func.coalesce(func.sum(func.length(voices.c.pcmu) + func.length(voices.c.pcma)), 0)
        ).where(voices.c.account_id == account_id)
    ).scalar_one()
    return int(used)


def check_voice_room(conn: Connection, account_id: int, *, quota: int) -> None:
    """Raise `VoiceStorageFull` when the account's quota is used up already: the cheap
    check before a voice is downloaded or decoded."""
    used = voice_bytes_used(conn, account_id)
    if used >= quota:
        raise VoiceStorageFull(used, quota)


def check_voice_quota(conn: Connection, account_id: int, *, adding: int, quota: int) -> None:
    """Raise `VoiceStorageFull` unless `adding` more bytes fit the account's quota.

    Inside the transaction that inserts the voice. The account's row is locked first, so
    that two uploads of one account on PostgreSQL cannot both pass on the same count
    (SQLite's write transactions are serial already; the lock clause is dropped there)."""
    conn.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())
    used = voice_bytes_used(conn, account_id)
    if used + adding > quota:
        raise VoiceStorageFull(used, quota, adding=adding)


@dataclass(frozen=True)
class VoiceRow:
    id: int
    account_id: int
    name: str
    source_format: str
    source_bytes: int
    duration_ms: int
    created_at: datetime


def named_voices(conn: Connection, account_id: int | None) -> list[VoiceRow]:
    """The library (named voices; cached online voices are not part of it)."""
    query = select(*_VOICE_COLUMNS).where(voices.c.name.is_not(None))
    if account_id is not None:
        query = query.where(voices.c.account_id == account_id)
    rows = conn.execute(query.order_by(voices.c.account_id, voices.c.name))
    return [VoiceRow(*row) for row in rows]


def find_voice(conn: Connection, account_id: int | None, voice_id: int) -> VoiceRow | None:
    query = select(*_VOICE_COLUMNS).where(voices.c.id == voice_id, voices.c.name.is_not(None))
    if account_id is not None:
        query = query.where(voices.c.account_id == account_id)
    row = conn.execute(query).one_or_none()
    return None if row is None else VoiceRow(*row)


def voice_task_count(conn: Connection, voice_id: int) -> int:
    return conn.execute(select(func.count()).where(tasks.c.voice_id == voice_id)).scalar_one()


def delete_voice(conn: Connection, account_id: int, voice_id: int) -> bool:
    """Remove a voice no task refers to; the foreign key refuses one that is in use."""
    result = conn.execute(
        delete(voices).where(voices.c.id == voice_id, voices.c.account_id == account_id)
    )
    return result.rowcount == 1


_VOICE_COLUMNS = (
    voices.c.id,
    voices.c.account_id,
    voices.c.name,
    voices.c.source_format,
    voices.c.source_bytes,
    voices.c.duration_ms,
    voices.c.created_at,
)
