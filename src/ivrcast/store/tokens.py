"""API tokens (`App.Sip_Auth.Login`): stored by their hash, never in clear."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from ivrcast.store.tables import tokens


@dataclass(frozen=True)
class TokenRow:
    account_id: int
    expires_at: datetime


def insert_token(
    conn: Connection, *, token_hash: str, account_id: int, expires_at: datetime, now: datetime
) -> None:
    """A new token for the account; expired tokens of every account go at the same time."""
    conn.execute(delete(tokens).where(tokens.c.expires_at <= now))
    conn.execute(
        insert(tokens).values(token_hash=token_hash, account_id=account_id, expires_at=expires_at)
    )


def find_token(conn: Connection, token_hash: str) -> TokenRow | None:
    """The token with this hash, expired or not."""
    row = conn.execute(
        select(tokens.c.account_id, tokens.c.expires_at).where(tokens.c.token_hash == token_hash)
    ).one_or_none()
    return None if row is None else TokenRow(row.account_id, row.expires_at)


def revoke_tokens(conn: Connection, account_id: int) -> int:
    """Every API token of the account -> gone (its accesskey was rotated)."""
    return conn.execute(delete(tokens).where(tokens.c.account_id == account_id)).rowcount
