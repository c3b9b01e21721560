"""Calling windows and `todayonly`, in the destination country's local time.

A window is a daily span of local wall-clock time (`09:00-20:00`); one whose end is
before its start spans midnight (`20:00-02:00`). "Today" for `todayonly=1` is the
country's calendar day on which the task was submitted (`tasks.local_day`): its calls may
be dialed while that day lasts and the window is open, and what is still queued at the
last open instant of that day expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ivrcast.config import Settings, Window
from ivrcast.numbers import get_nation


@dataclass(frozen=True)
class CountryTime:
    """One country's window and time zone."""

    code: str
    window: Window
    zone: ZoneInfo

    @classmethod
    def from_settings(cls, settings: Settings, code: str) -> CountryTime:
        country = settings.country(code)
        zone_name = country.timezone or get_nation(code).timezone
        return cls(code=code, window=country.window, zone=ZoneInfo(zone_name))

    def local(self, now: datetime) -> datetime:
        return now.astimezone(self.zone)

    def is_open(self, now: datetime) -> bool:
        """Whether calls to this country may be placed at `now`."""
        return window_contains(self.window, self.local(now).time())

    def today(self, now: datetime) -> date:
        return self.local(now).date()

    def day_deadline(self, local_day: date) -> datetime:
        """The instant (UTC) after which nothing more can be dialed on `local_day`: the
        end of the last window span that lies inside that calendar day."""
        start, end = self.window.start, self.window.end
        if end == time.max or end <= start:
            # The window runs until midnight (or past it): the day itself ends first.
            local = datetime.combine(local_day + timedelta(days=1), time(0), tzinfo=self.zone)
        else:
            local = datetime.combine(local_day, end, tzinfo=self.zone)
        return local.astimezone(UTC)

    def todayonly_expired(self, local_day: date, now: datetime) -> bool:
        """Whether a todayonly=1 task of `local_day` can no longer be dialed."""
        return now >= self.day_deadline(local_day)


def window_contains(window: Window, at: time) -> bool:
    start, end = window.start, window.end
    if start < end:
        return start <= at and (at < end or end == time.max)
    # Spans midnight: open from start to 24:00 and from 00:00 to end.
    return at >= start or at < end
