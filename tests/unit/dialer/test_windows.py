"""Calling windows and todayonly deadlines in each country's local time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from ivrcast.clock import FrozenClock
from ivrcast.config import Settings, Window
from ivrcast.dialer.windows import CountryTime, window_contains


def country(window: str, zone: str, code: str = "id") -> CountryTime:
    return CountryTime(code=code, window=Window.parse(window), zone=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("window", "at", "open_"),
    [
        ("09:00-20:00", time(8, 59), False),
        ("09:00-20:00", time(9, 0), True),
        ("09:00-20:00", time(19, 59, 59), True),
        ("09:00-20:00", time(20, 0), False),
        ("20:00-02:00", time(23, 0), True),
        ("20:00-02:00", time(1, 59), True),
        ("20:00-02:00", time(2, 0), False),
        ("20:00-02:00", time(12, 0), False),
        ("00:00-24:00", time(0, 0), True),
        ("00:00-24:00", time.max, True),
    ],
)
def test_window_contains(window: str, at: time, open_: bool) -> None:
    assert window_contains(Window.parse(window), at) is open_


def test_the_same_instant_is_open_in_one_country_and_closed_in_another() -> None:
    # 03:00 UTC is 10:00 in Jakarta (UTC+7) and 21:00 the day before in Mexico City
    # (UTC-6), 08:30 in Kolkata (UTC+5:30).
    clock = FrozenClock(datetime(2025, 3, 10, 3, 0, tzinfo=UTC))
    settings = Settings()
    jakarta = CountryTime.from_settings(settings, "id")
    mexico = CountryTime.from_settings(settings, "mx")
    india = CountryTime.from_settings(settings, "in")
    assert jakarta.is_open(clock.now())
    assert not mexico.is_open(clock.now())
    assert not india.is_open(clock.now())
    clock.advance(30 * 60)  # 09:00 in Kolkata
    assert india.is_open(clock.now())
    assert mexico.today(clock.now()) == date(2025, 3, 9)


def test_country_settings_override_window_and_zone() -> None:
    settings = Settings.model_validate(
        {"countries": {"id": {"window": "07:30-08:00", "timezone": "UTC"}}}
    )
    jakarta = CountryTime.from_settings(settings, "id")
    assert jakarta.is_open(datetime(2025, 3, 10, 7, 45, tzinfo=UTC))
    assert not jakarta.is_open(datetime(2025, 3, 10, 8, 0, tzinfo=UTC))


def test_todayonly_deadline_is_the_window_end_of_the_local_day() -> None:
    jakarta = country("09:00-20:00", "Asia/Jakarta")
    day = date(2025, 3, 10)
    assert jakarta.day_deadline(day) == datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
    assert not jakarta.todayonly_expired(day, datetime(2025, 3, 10, 12, 59, tzinfo=UTC))
    assert jakarta.todayonly_expired(day, datetime(2025, 3, 10, 13, 0, tzinfo=UTC))
    # Submitted before the window opened: still dialable later that day.
    assert not jakarta.todayonly_expired(day, datetime(2025, 3, 10, 0, 30, tzinfo=UTC))


def test_todayonly_deadline_of_a_window_past_midnight_is_the_end_of_the_day() -> None:
    bogota = country("20:00-02:00", "America/Bogota")
    # Midnight at the end of 10 March in Bogota (UTC-5) is 05:00 UTC on 11 March.
    assert bogota.day_deadline(date(2025, 3, 10)) == datetime(2025, 3, 11, 5, 0, tzinfo=UTC)


def test_todayonly_deadline_follows_daylight_saving_time() -> None:
    berlin = country("09:00-20:00", "Europe/Berlin")
    assert berlin.day_deadline(date(2025, 3, 29)) == datetime(2025, 3, 29, 19, 0, tzinfo=UTC)
    assert berlin.day_deadline(date(2025, 3, 31)) == datetime(2025, 3, 31, 18, 0, tzinfo=UTC)


def test_a_day_in_the_past_has_expired() -> None:
    manila = country("09:00-20:00", "Asia/Manila")
    assert manila.todayonly_expired(date(2025, 3, 9), datetime(2025, 3, 10, 2, 0, tzinfo=UTC))
