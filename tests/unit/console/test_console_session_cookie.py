"""The session cookie and CSRF token, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ivrcast.console.session import SessionKeys, new_session

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def test_a_cookie_reads_back_as_the_session_it_was_made_from() -> None:
    keys = SessionKeys(b"k" * 32)
    session = new_session(now=NOW, minutes=30, account_id=7, fingerprint="abc")
    read = keys.decode(keys.encode(session), now=NOW)
    assert read is not None
    assert (read.sid, read.account_id, read.operator, read.fingerprint) == (
        session.sid,
        7,
        False,
        "abc",
    )
    assert read.expires_at == session.expires_at.replace(microsecond=0)


def test_a_changed_or_foreign_cookie_is_refused() -> None:
    keys = SessionKeys(b"k" * 32)
    cookie = keys.encode(new_session(now=NOW, minutes=30, account_id=7))
    payload, _, mac = cookie.partition(".")
    forged = SessionKeys(b"other" * 8).encode(new_session(now=NOW, minutes=30, account_id=8))
    for value in (
        payload[:-2] + "AA." + mac,
        forged,
        forged.partition(".")[0] + "." + mac,
        "garbage",
        "",
        None,
    ):
        assert keys.decode(value, now=NOW) is None


def test_a_session_ends_at_its_expiry() -> None:
    keys = SessionKeys(b"k" * 32)
    cookie = keys.encode(new_session(now=NOW, minutes=30, account_id=7))
    assert keys.decode(cookie, now=NOW + timedelta(minutes=29)) is not None
    assert keys.decode(cookie, now=NOW + timedelta(minutes=30)) is None


def test_each_session_has_its_own_csrf_token() -> None:
    keys = SessionKeys(b"k" * 32)
    one = new_session(now=NOW, minutes=30)
    two = new_session(now=NOW, minutes=30)
    assert keys.csrf_matches(one, keys.csrf_token(one))
    assert not keys.csrf_matches(one, keys.csrf_token(two))
    assert not keys.csrf_matches(one, None)
    assert not keys.csrf_matches(one, "")
