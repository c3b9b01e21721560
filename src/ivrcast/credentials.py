"""Secrets at rest: accesskeys and tokens are kept only as keyed hashes; callback
secrets, which the server must use, are encrypted (AES-256-GCM).

The key is the server's own (`[security] secret_key`, or a random key created once in the
data folder), so a copy of the database alone does not let anyone test guesses offline
nor sign call records as the server. Comparisons run in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ivrcast.config import Settings
from ivrcast.errors import ConfigError
from ivrcast.private_files import private_dir

SECRET_FILE = "secret.key"
SEALED_PREFIX = "aesgcm1:"
"""Marks an encrypted callback secret; a stored value without it is a plaintext one
written before encryption (read as is until `ivrcast migrate` seals it)."""
_NONCE_BYTES = 12  # NIST SP 800-38D §8.2: 96-bit random nonces


def load_secret_key(settings: Settings) -> bytes:
    """The key for accesskey and token hashes: configured, or created once on disk."""
    if settings.security.secret_key:
        return settings.security.secret_key.encode()
    path = settings.data_dir / SECRET_FILE
    if not path.exists():
        _create_secret_file(path)
    return path.read_bytes().strip()


def _create_secret_file(path: Path) -> None:
    private_dir(path.parent)
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


class SecretUnreadable(ConfigError):
    """A stored callback secret cannot be decrypted: the server key has changed."""


def _sealing_key(key: bytes) -> bytes:
    # A key of its own, derived from the server key, so that hashes and ciphertexts
    # never share one.
    return hmac.new(key, b"ivrcast callback secrets v1", hashlib.sha256).digest()


def seal_secret(key: bytes, plaintext: str) -> str:
    """The callback secret as stored: `aesgcm1:` and base64url of nonce + ciphertext."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_sealing_key(key)).encrypt(nonce, plaintext.encode(), None)
    return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


def open_secret(key: bytes, stored: str) -> str:
    """The plaintext of a stored callback secret (a legacy plaintext one as it is)."""
    if not is_sealed(stored):
        return stored
    try:
        raw = base64.urlsafe_b64decode(stored.removeprefix(SEALED_PREFIX))
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        return AESGCM(_sealing_key(key)).decrypt(nonce, sealed, None).decode()
    except (InvalidTag, binascii.Error, ValueError) as exc:
        raise SecretUnreadable() from exc
