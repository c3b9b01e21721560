"""The account and voice a fresh install starts with, so the README's tour works at once."""

from __future__ import annotations

import io
import math
import os
import secrets
import struct
import wave
from dataclasses import dataclass
from datetime import datetime

from ivrcast.config import Settings
from ivrcast.credentials import hash_secret, load_secret_key
from ivrcast.store.accounts import create_account, list_accounts
from ivrcast.store.engine import Database
from ivrcast.store.voices import insert_voice
from ivrcast.voices.transcode import transcode

DEMO_APPID = "demo"
DEMO_VOICE = "welcome"
CREDENTIALS_FILE = "demo-account.txt"


@dataclass(frozen=True)
class DemoAccount:
    appid: str
    accesskey: str
    voice: str


def ensure_demo_account(settings: Settings, db: Database, *, now: datetime) -> DemoAccount | None:
    """Create the demo account and its voice when the database has no account at all.

    The accesskey is shown once and kept in the data folder (mode 0600), since the
    database holds only its hash. Returns None when accounts exist already.
    """
    with db.write() as conn:
        if list_accounts(conn):
            return None
        accesskey = secrets.token_urlsafe(18)
        account = create_account(
            conn,
            appid=DEMO_APPID,
            accesskey_hash=hash_secret(load_secret_key(settings), accesskey),
            now=now,
        )
        tone = demo_tone()
        voice = transcode(tone, max_duration=settings.limits.max_voice_seconds)
        insert_voice(
            conn,
            account_id=account.id,
            name=DEMO_VOICE,
            source_url=None,
            source_format=voice.source_format,
            source_bytes=len(tone),
            duration_ms=voice.duration_ms,
            pcmu=voice.pcmu,
            pcma=voice.pcma,
            now=now,
        )
    path = settings.data_dir / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(f"appid={DEMO_APPID}\naccesskey={accesskey}\nvoice={DEMO_VOICE}\n")
    return DemoAccount(DEMO_APPID, accesskey, DEMO_VOICE)


def demo_tone(seconds: float = 3.0, rate: int = 8000) -> bytes:
    """A WAV of two short chimes: something audible to play before any voice is uploaded."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        t = i / rate
        pitch = 660.0 if t % 1.0 < 0.5 else 880.0
        envelope = max(0.0, 1.0 - (t % 0.5) * 2)
        frames += struct.pack("<h", int(12000 * envelope * math.sin(2 * math.pi * pitch * t)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return buffer.getvalue()
