"""Who is calling: appid/accesskey (the vendor's way), tokens, and the client's address."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from ivrcast.api.errors import AccountExpired, BadCredentials, IpNotAllowed, TokenInvalid
from ivrcast.credentials import hash_secret, new_token, secret_matches
from ivrcast.store.accounts import Account, find_account, get_account
from ivrcast.store.engine import Connection
from ivrcast.store.tokens import find_token, insert_token

# Compared against when the appid is unknown, so that a wrong appid and a wrong
# accesskey take the same time and cannot be told apart.
_DUMMY_HASH = "0" * 64


def authenticate(
    conn: Connection,
    key: bytes,
    *,
    appid: str,
    accesskey: str,
    client_ip: str | None,
    now: datetime,
) -> Account:
    account = find_account(conn, appid)
    matches = secret_matches(key, accesskey, account.accesskey_hash if account else _DUMMY_HASH)
    if account is None or not matches or account.disabled:
        raise BadCredentials()
    return check_account(account, client_ip=client_ip, now=now)


def check_account(account: Account, *, client_ip: str | None, now: datetime) -> Account:
    if account.expires_at is not None and account.expires_at <= now:
        raise AccountExpired()
    if account.allowed_ips and not _ip_allowed(client_ip, account.allowed_ips):
        raise IpNotAllowed(f"IP not authorized: {client_ip}")
    return account


def _ip_allowed(client_ip: str | None, allowed: tuple[str, ...]) -> bool:
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def issue_token(
    conn: Connection, key: bytes, account: Account, *, now: datetime, ttl_hours: int
) -> tuple[str, datetime]:
    token = new_token()
    expires_at = now + timedelta(hours=ttl_hours)
    insert_token(
        conn,
        token_hash=hash_secret(key, token),
        account_id=account.id,
        expires_at=expires_at,
        now=now,
    )
    return token, expires_at


def account_for_token(
    conn: Connection, key: bytes, token: str, *, client_ip: str | None, now: datetime
) -> Account:
    row = find_token(conn, hash_secret(key, token))
    if row is None or row.expires_at <= now:
        raise TokenInvalid()
    account = get_account(conn, row.account_id)
    if account.disabled:
        raise BadCredentials()
    return check_account(account, client_ip=client_ip, now=now)
