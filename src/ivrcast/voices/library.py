"""The voice library: turning an upload or a URL into a stored, pre-encoded voice.

Decoding is CPU-bound: it runs in the transcode pool's worker processes
(`ivrcast.voices.pool`), and the synchronous store in threads, so the caller's event loop
stays free. Each account's voices count against its storage quota
(`[limits] max_voice_storage_bytes`), checked before decoding and again when storing.

Online voices (`voicetype=2`) are cached per account by their exact URL: a URL is
fetched once, and later tasks naming it reuse the stored audio. A customer who changes
the audio behind a URL gives it a new URL (for instance a `?v=2` query), as with any
cached media.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from ivrcast.config import Settings
from ivrcast.store.engine import Connection, Database
from ivrcast.store.voices import (
    VoiceInfo,
    check_voice_quota,
    check_voice_room,
    find_voice_by_name,
    find_voice_by_url,
    insert_voice,
)
from ivrcast.voices.errors import VoiceTooLarge
from ivrcast.voices.fetch import fetch_audio
from ivrcast.voices.pool import TranscodePool, VoiceLimits
from ivrcast.voices.transcode import EncodedVoice, validate_voice_name


async def add_uploaded_voice(
    db: Database,
    settings: Settings,
    pool: TranscodePool,
    *,
    account_id: int,
    name: str,
    data: bytes,
    now: datetime,
) -> VoiceInfo:
    """Validate, transcode and store an uploaded file under `name`."""
    validate_voice_name(name)
    if len(data) > settings.limits.max_upload_bytes:
        raise VoiceTooLarge(settings.limits.max_upload_bytes)
    await _check_room(db, settings, account_id)
    encoded = await pool.transcode(account_id, data, VoiceLimits.from_settings(settings.limits))

    def store() -> VoiceInfo:
        with db.write() as conn:
            return _insert_within_quota(
                conn, settings, account_id, encoded, name=name, url=None, data=data, now=now
            )

    return await asyncio.to_thread(store)


async def voice_from_url(
    db: Database,
    settings: Settings,
    pool: TranscodePool,
    *,
    account_id: int,
    url: str,
    now: datetime,
) -> VoiceInfo:
    """The stored voice for `url`, fetching and transcoding it on first use."""

    def cached() -> VoiceInfo | None:
        with db.read() as conn:
            return find_voice_by_url(conn, account_id, url)

    voice = await asyncio.to_thread(cached)
    if voice is not None:
        return voice
    await _check_room(db, settings, account_id)
    limits = settings.limits
    data = await fetch_audio(
        url,
        allow_private=settings.security.allow_private_urls,
        max_bytes=limits.max_upload_bytes,
        connect_timeout=limits.fetch_connect_timeout,
        total_timeout=limits.fetch_total_timeout,
    )
    encoded = await pool.transcode(account_id, data, VoiceLimits.from_settings(limits))

    def store() -> VoiceInfo:
        with db.write() as conn:
            # A concurrent submission may have cached the same URL meanwhile.
            existing = find_voice_by_url(conn, account_id, url)
            if existing is not None:
                return existing
            return _insert_within_quota(
                conn, settings, account_id, encoded, name=None, url=url, data=data, now=now
            )

    return await asyncio.to_thread(store)


def _insert_within_quota(
    conn: Connection,
    settings: Settings,
    account_id: int,
    encoded: EncodedVoice,
    *,
    name: str | None,
    url: str | None,
    data: bytes,
    now: datetime,
) -> VoiceInfo:
    """Store a transcoded voice, named (an upload) or by its `url` (an online voice), if
    the account's quota still has room for it."""
    check_voice_quota(
        conn,
        account_id,
        adding=len(encoded.pcmu) + len(encoded.pcma),
        quota=settings.limits.max_voice_storage_bytes,
    )
    return insert_voice(
        conn,
        account_id=account_id,
        name=name,
        source_url=url,
        source_format=encoded.source_format,
        source_bytes=len(data),
        duration_ms=encoded.duration_ms,
        pcmu=encoded.pcmu,
        pcma=encoded.pcma,
        now=now,
    )


async def _check_room(db: Database, settings: Settings, account_id: int) -> None:
    """Refuse at once, before any download or decoding, when the quota is used up."""

    def check() -> None:
        with db.read() as conn:
            check_voice_room(conn, account_id, quota=settings.limits.max_voice_storage_bytes)

    await asyncio.to_thread(check)


def named_voice(db: Database, account_id: int, name: str) -> VoiceInfo | None:
    with db.read() as conn:
        return find_voice_by_name(conn, account_id, name)
