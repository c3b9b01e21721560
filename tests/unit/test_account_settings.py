"""An account's settings parsed once for the CLI and the console: each bad value names
its field, and what is stored is what the API can use."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ivrcast.account_settings import (
    account_changes,
    parse_callerids,
    parse_countries,
    parse_expiry,
    parse_max_concurrency,
    parse_networks,
)
from ivrcast.errors import ValidationError

JAKARTA = ZoneInfo("Asia/Jakarta")


def test_lists_are_normalised() -> None:
    assert parse_countries(" ID，in id ") == ("id", "in")
    assert parse_countries("") == ()
    assert parse_networks("203.0.113.7/24, 2001:db8::1") == ("203.0.113.0/24", "2001:db8::1/128")
    assert parse_callerids("622150001000 +62215 622150001000") == ("622150001000", "+62215")


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("countries", "id,xx", "unknown nation code 'xx'"),
        ("allowed_ips", "10.0.0.0/33", "'10.0.0.0/33' is not an IP address or network"),
        ("callerids", "62<script>", "1 to 32 letters"),
        ("max_concurrency", "0", "must be 1 to 100000, got 0"),
        ("max_concurrency", "ten", "'ten' is not a whole number"),
        ("expires", "31/12/2026", "give YYYY-MM-DD or never"),
        ("callback_url", "ftp://x", "must be an http:// or https:// URL"),
        ("default_retries", "6", "must be 0 to 5, got 6"),
        ("default_retries", "-1", "must be 0 to 5, got -1"),
        ("default_retries", "two", "'two' is not a whole number"),
        ("default_record", "maybe", "give 1 (record) or 0 (do not)"),
        ("disabled", "1", "not an account setting"),
    ],
)
def test_each_bad_value_names_its_field(field: str, text: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        account_changes({field: text}, JAKARTA)
    assert caught.value.param == field
    assert message in caught.value.message


def test_expiry_is_the_start_of_the_day_in_the_zone() -> None:
    expires = parse_expiry("2026-12-01", JAKARTA)
    assert expires == datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    assert parse_expiry("never", JAKARTA) is None
    assert parse_expiry("", JAKARTA) is None


def test_changes_hold_only_the_fields_given() -> None:
    assert account_changes({"max_concurrency": "50", "expires": "never"}, JAKARTA) == {
        "max_concurrency": 50,
        "expires_at": None,
    }
    assert parse_max_concurrency(7) == 7


def test_playvoice_defaults_are_parsed() -> None:
    assert account_changes({"default_retries": " 5 ", "default_record": "yes"}, JAKARTA) == {
        "default_retries": 5,
        "default_record": True,
    }
    assert account_changes({"default_retries": "0", "default_record": "0"}, JAKARTA) == {
        "default_retries": 0,
        "default_record": False,
    }
