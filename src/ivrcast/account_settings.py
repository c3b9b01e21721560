"""An account's settings as the operator writes them, parsed and checked in one place for
`ivrcast account create|update` and the console's account pages.

Each field arrives as text (a comma-separated list, a number, a date) and leaves as the
value `store.accounts` keeps, or raises `ValidationError` naming the field, so neither the
CLI nor the console can store something the API would later trip over (an IP network that
does not parse would otherwise surface as an error on the account's every request).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from ivrcast.errors import ValidationError
from ivrcast.numbers import UnknownNation, get_nation
from ivrcast.store.tasks import RETRIES_MAX

MAX_CONCURRENCY = 100_000
# What PlayVoice accepts as a disnumber (api.services.play_voice): the pool must match it.
_CALLER_ID = re.compile(r"[A-Za-z0-9+*#._-]{1,32}")
NEVER = "never"
_YES = ("1", "yes", "true", "on")
_NO = ("0", "no", "false", "off")


def split_list(text: str) -> list[str]:
    """Items of a list written with commas (full-width ones too) or white space."""
    return [item for item in re.split(r"[,，\s]+", text.strip()) if item]


def parse_countries(text: str) -> tuple[str, ...]:
    """Nation codes (`in,id`); empty: every nation."""
    codes: list[str] = []
    for item in split_list(text):
        try:
            code = get_nation(item).code
        except UnknownNation:
            raise ValidationError("countries", f"unknown nation code {item!r}") from None
        if code not in codes:
            codes.append(code)
    return tuple(codes)


def parse_callerids(text: str) -> tuple[str, ...]:
    """Caller IDs the account may present as disnumber; empty: the trunks' pools only."""
    ids = split_list(text)
    for item in ids:
        if not _CALLER_ID.fullmatch(item):
            raise ValidationError(
                "callerids", f"{item!r}: 1 to 32 letters, digits or + * # . _ - characters"
            )
    return tuple(dict.fromkeys(ids))


def parse_networks(text: str) -> tuple[str, ...]:
    """Client addresses or networks (`203.0.113.0/24, 2001:db8::1`); empty: any address."""
    networks: list[str] = []
    for item in split_list(text):
        try:
            network = str(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValidationError(
                "allowed_ips", f"{item!r} is not an IP address or network"
            ) from None
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def parse_max_concurrency(text: str | int) -> int:
    """Calls in progress at once, over every dialer node."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValidationError("max_concurrency", f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ValidationError("max_concurrency", f"must be 1 to {MAX_CONCURRENCY}, got {value}")
    return value


def parse_default_retries(text: str | int) -> int:
    """PlayVoice's `retries` when a request sends none: 0 to `RETRIES_MAX` extra rounds."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValidationError("default_retries", f"{text!r} is not a whole number") from None
    if not 0 <= value <= RETRIES_MAX:
        raise ValidationError("default_retries", f"must be 0 to {RETRIES_MAX}, got {value}")
    return value


def parse_default_record(text: str | bool) -> bool:
    """PlayVoice's `record` when a request sends none: `1`/`yes` records answered calls,
    `0`/`no` does not."""
    word = str(text).strip().lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise ValidationError("default_record", f"{text!r}: give 1 (record) or 0 (do not)")


def parse_expiry(text: str, zone: ZoneInfo) -> datetime | None:
    """`YYYY-MM-DD`: the account expires at the start of that day in `zone` (its API calls
    then answer 602); `never` or empty: it does not expire."""
    text = text.strip()
    if text.lower() in ("", NEVER):
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValidationError("expires", f"{text!r}: give YYYY-MM-DD or {NEVER}") from None
    return datetime.combine(day, time(0), zone)


def parse_callback_url(text: str) -> str | None:
    """Where records are POSTed; empty: none (records are kept for pulling)."""
    text = text.strip()
    if not text:
        return None
    if not text.startswith(("http://", "https://")) or len(text) > 2000:
        raise ValidationError("callback_url", "must be an http:// or https:// URL")
    return text


def account_changes(fields: dict[str, str], zone: ZoneInfo) -> dict[str, Any]:
    """The store's column values for the fields given (absent ones are left as they are):
    `countries`, `callerids`, `allowed_ips`, `max_concurrency`, `expires`, `callback_url`,
    `default_retries`, `default_record`."""
    parsers = {
        "countries": ("countries", parse_countries),
        "callerids": ("callerids", parse_callerids),
        "allowed_ips": ("allowed_ips", parse_networks),
        "max_concurrency": ("max_concurrency", parse_max_concurrency),
        "callback_url": ("callback_url", parse_callback_url),
        "default_retries": ("default_retries", parse_default_retries),
        "default_record": ("default_record", parse_default_record),
    }
    values: dict[str, Any] = {}
    for name, text in fields.items():
        if name == "expires":
            values["expires_at"] = parse_expiry(text, zone)
        elif name in parsers:
            column, parse = parsers[name]
            values[column] = parse(text)
        else:
            raise ValidationError(name, "not an account setting")
    return values
