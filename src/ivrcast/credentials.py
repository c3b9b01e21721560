"""Secrets at rest: accesskeys and tokens are kept only as keyed hashes.

The key is the server's own (`[security] secret_key`, or a random key created once in the
data folder), so a copy of the database alone does not let anyone test guesses offline.
Comparisons run in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ivrcast.config import Settings

SECRET_FILE = "secret.key"


def load_secret_key(settings: Settings) -> bytes:
    """The key for accesskey and token hashes: configured, or created once on disk."""
    if settings.security.secret_key:
        return settings.security.secret_key.encode()
    path = settings.data_dir / SECRET_FILE
    if not path.exists():
        _create_secret_file(path)
    return path.read_bytes().strip()


def _create_secret_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when two processes start at once, one creates the key and both read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32))


def hash_secret(key: bytes, value: str) -> str:
    """HMAC-SHA256 of an accesskey or token, hex."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def secret_matches(key: bytes, value: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(key, value), stored_hash)


def new_token() -> str:
    return secrets.token_urlsafe(32)
