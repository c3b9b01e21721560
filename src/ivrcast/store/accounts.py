"""Accounts: who may submit, what they may call, where their records go."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy.exc
from sqlalchemy import Connection, select

from ivrcast.errors import ConflictError, NotFoundError
from ivrcast.store.tables import accounts


@dataclass(frozen=True)
class Account:
    id: int
    appid: str
    accesskey_hash: str
    callback_url: str | None
    callback_secret: str | None
    countries: tuple[str, ...]
    """Nation codes the account may call; empty means every configured nation."""
    callerids: tuple[str, ...]
    """Caller IDs the account may ask for as `disnumber`, beyond its trunks' pools."""
    allowed_ips: tuple[str, ...]
    max_concurrency: int
    disabled: bool
    expires_at: datetime | None
    created_at: datetime
    default_retries: int = 0
    """PlayVoice's `retries` when a request sends none."""
    default_record: bool = False
    """PlayVoice's `record` when a request sends none (True: record answered calls)."""

    def may_call(self, nationcode: str) -> bool:
        return not self.countries or nationcode in self.countries


class AccountExists(ConflictError):
    """An account with this appid exists already."""


class AccountNotFound(NotFoundError):
    """No such account."""


def _split(value: str) -> tuple[str, ...]:
    return tuple(item for item in value.split(",") if item)


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        appid=row.appid,
        accesskey_hash=row.accesskey_hash,
        callback_url=row.callback_url,
        callback_secret=row.callback_secret,
        countries=_split(row.countries),
        callerids=_split(row.callerids),
        allowed_ips=_split(row.allowed_ips),
        max_concurrency=row.max_concurrency,
        disabled=row.disabled,
        expires_at=row.expires_at,
        created_at=row.created_at,
        default_retries=row.default_retries,
        default_record=row.default_record,
    )


def create_account(
    conn: Connection,
    *,
    appid: str,
    accesskey_hash: str,
    now: datetime,
    callback_url: str | None = None,
    callback_secret: str | None = None,
    countries: Sequence[str] = (),
    callerids: Sequence[str] = (),
    allowed_ips: Sequence[str] = (),
    max_concurrency: int = 30,
    expires_at: datetime | None = None,
    default_retries: int = 0,
    default_record: bool = False,
) -> Account:
    try:
        row = conn.execute(
            accounts.insert()
            .values(
                appid=appid,
                accesskey_hash=accesskey_hash,
                callback_url=callback_url,
                callback_secret=callback_secret,
                countries=",".join(countries),
                callerids=",".join(callerids),
                allowed_ips=",".join(allowed_ips),
                max_concurrency=max_concurrency,
                default_retries=default_retries,
                default_record=default_record,
                disabled=False,
                expires_at=expires_at,
                created_at=now,
            )
            .returning(*accounts.c)
        ).one()
    except sqlalchemy.exc.IntegrityError as exc:
        raise AccountExists(f"appid: an account {appid!r} exists already") from exc
    return _account(row)


def find_account(conn: Connection, appid: str) -> Account | None:
    row = conn.execute(select(accounts).where(accounts.c.appid == appid)).one_or_none()
    return None if row is None else _account(row)


def get_account(conn: Connection, account_id: int) -> Account:
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).one_or_none()
    if row is None:
        raise AccountNotFound(f"no account with id {account_id}")
    return _account(row)


def list_accounts(conn: Connection) -> list[Account]:
    return [_account(row) for row in conn.execute(select(accounts).order_by(accounts.c.appid))]


def update_account(conn: Connection, appid: str, **values: Any) -> Account:
    """Change the named columns; list-valued fields are given as sequences."""
    for key in ("countries", "callerids", "allowed_ips"):
        if key in values:
            values[key] = ",".join(values[key])
    row = conn.execute(
        accounts.update().where(accounts.c.appid == appid).values(**values).returning(*accounts.c)
    ).one_or_none()
    if row is None:
        raise AccountNotFound(f"appid: no account {appid!r}")
    return _account(row)


def plaintext_callback_secrets(conn: Connection, sealed_prefix: str) -> list[tuple[int, str]]:
    """(account id, secret) of the callback secrets not yet encrypted (no `sealed_prefix`)."""
    rows = conn.execute(
        select(accounts.c.id, accounts.c.callback_secret).where(
            accounts.c.callback_secret.is_not(None),
            accounts.c.callback_secret != "",
            accounts.c.callback_secret.not_like(f"{sealed_prefix}%"),
        )
    )
    return [(row.id, row.callback_secret) for row in rows]


def set_callback_secret(conn: Connection, account_id: int, stored: str) -> None:
    """Replace an account's stored callback secret (already encrypted by the caller)."""
    conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(callback_secret=stored)
    )


def appids_by_account(conn: Connection) -> dict[int, str]:
    """Every account's appid, by account id."""
    return {row.id: row.appid for row in conn.execute(select(accounts.c.id, accounts.c.appid))}
