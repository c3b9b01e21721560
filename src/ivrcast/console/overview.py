"""The overview's figures: today's calls, answer rate, billed time, live counts, the chart.

All of it comes from one aggregate (`store.activity.activity`: ended calls per minute, nation
and state). A tracker keeps the minutes that can no longer change and, on each refresh,
reads only the last few minutes again, so the live stream costs a small range scan per
poll however busy the day was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ivrcast.numbers import NATIONS
from ivrcast.store.activity import Bucket, activity, live_counts
from ivrcast.store.engine import Connection

CHART_MINUTES = 180
FRESH_SECONDS = 2.0
"""Viewers of one account asking within this time share one refresh."""
IDLE_SECONDS = 600.0
"""A tracker nobody asked for in this long is dropped."""
SETTLE = timedelta(minutes=2)
"""A record older than this is committed: no transaction of ivrcast lasts that long, so
its minute is final and is not read again."""

OUTCOMES: dict[str, tuple[str, ...]] = {
    "answered": ("completed",),
    "busy": ("busy",),
    "no answer": ("no_answer",),
    "failed": ("failed", "rejected", "interrupted"),
    "not dialed": ("canceled", "expired"),
}
_GROUP_OF = {state: group for group, states in OUTCOMES.items() for state in states}


def _minute(when: datetime) -> int:
    return int(when.timestamp()) // 60


@dataclass
class OverviewTracker:
    """Figures for one viewer (`account_id` None: the operator), refreshed in place."""

    account_id: int | None
    zone: ZoneInfo
    _settled: dict[tuple[int, str, str], Bucket] = field(default_factory=dict)
    _settled_until: datetime | None = None

    def refresh(self, conn: Connection, now: datetime) -> dict[str, Any]:
        local = now.astimezone(self.zone)
        day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        window_start = min(day_start, now - timedelta(minutes=CHART_MINUTES))
        window_start = window_start.replace(second=0, microsecond=0)
        first_minute = _minute(window_start)
        for key in [k for k in self._settled if k[0] < first_minute]:
            del self._settled[key]
        if self._settled_until is None or self._settled_until < window_start:
            self._settled_until = window_start
        settle_to = (now - SETTLE).replace(second=0, microsecond=0)
        if settle_to > self._settled_until:
            for bucket in activity(
                conn, self.account_id, since=self._settled_until, until=settle_to
            ):
                self._settled[(bucket.minute, bucket.nationcode, bucket.status)] = bucket
            self._settled_until = settle_to
        fresh = activity(conn, self.account_id, since=self._settled_until)
        buckets = [*self._settled.values(), *fresh]
        return {
            "now": now.isoformat(),
            **_today(buckets, _minute(day_start)),
            **live_counts(conn, self.account_id),
            "chart": _chart(buckets, _minute(now)),
        }


def _today(buckets: list[Bucket], day_minute: int) -> dict[str, Any]:
    totals = _Totals()
    nations: dict[str, _Totals] = {}
    for bucket in buckets:
        if bucket.minute < day_minute:
            continue
        totals.add(bucket)
        nations.setdefault(bucket.nationcode, _Totals()).add(bucket)
    countries = [
        {"code": code, "name": NATIONS[code].name if code in NATIONS else code, **t.figures()}
        for code, t in sorted(nations.items(), key=lambda item: -item[1].calls)
    ]
    return {**totals.figures(), "countries": countries}


@dataclass
class _Totals:
    calls: int = 0
    dialed: int = 0
    answered: int = 0
    billsec: float = 0.0

    def add(self, bucket: Bucket) -> None:
        self.calls += bucket.calls
        # Canceled and expired calls were never dialed: they do not lower the answer rate.
        if _GROUP_OF.get(bucket.status) != "not dialed":
            self.dialed += bucket.calls
        self.answered += bucket.answered
        self.billsec += bucket.billsec

    def figures(self) -> dict[str, Any]:
        return {
            "ended": self.calls,
            "answered": self.answered,
            "answer_rate": round(100 * self.answered / self.dialed, 1) if self.dialed else None,
            "avg_billsec": round(self.billsec / self.answered, 1) if self.answered else None,
        }


def _chart(buckets: list[Bucket], now_minute: int) -> dict[str, Any]:
    """Calls per minute by outcome, oldest minute first, the current minute last."""
    start = now_minute - CHART_MINUTES + 1
    series = {group: [0] * CHART_MINUTES for group in OUTCOMES}
    for bucket in buckets:
        index = bucket.minute - start
        if 0 <= index < CHART_MINUTES:
            series[_GROUP_OF.get(bucket.status, "failed")][index] += bucket.calls
    return {"start": start * 60, "step": 60, "series": series}


class OverviewHub:
    """One tracker per account (and one for the operator), shared by all its viewers, so
    that ten open tabs cost what one does and a reconnecting stream starts warm."""

    def __init__(self, zone: ZoneInfo, *, fresh_seconds: float = FRESH_SECONDS) -> None:
        self.zone = zone
        self.fresh_seconds = fresh_seconds
        self._lock = threading.Lock()
        self._entries: dict[int | None, _Entry] = {}

    def snapshot(
        self,
        account_id: int | None,
        connect: Callable[[], AbstractContextManager[Connection]],
        now: datetime,
    ) -> dict[str, Any]:
        """The latest figures; blocking (database reads), so run it in a thread."""
        with self._lock:
            clock = time.monotonic()
            for key in [k for k, e in self._entries.items() if clock - e.used > IDLE_SECONDS]:
                del self._entries[key]
            entry = self._entries.setdefault(
                account_id, _Entry(OverviewTracker(account_id, self.zone))
            )
            entry.used = clock
        with entry.lock:
            if entry.figures is None or clock - entry.refreshed >= self.fresh_seconds:
                with connect() as conn:
                    entry.figures = entry.tracker.refresh(conn, now)
                entry.refreshed = time.monotonic()
            return entry.figures


@dataclass
class _Entry:
    tracker: OverviewTracker
    lock: threading.Lock = field(default_factory=threading.Lock)
    figures: dict[str, Any] | None = None
    refreshed: float = 0.0
    used: float = 0.0
