"""When to try a failed delivery again, and when to give up.

The nominal delay doubles with each failed attempt, from `base` up to `cap`; the delay
actually used is drawn uniformly between half the nominal and the nominal. Jitter spreads
the retries of a receiver that was down for everyone at once, and the lower half-bound
keeps a failing receiver from being retried at once.

A delivery is retried until its maximum age (counted from when it was queued): the last
retry is moved to the deadline itself rather than dropped, and a failure at or after the
deadline makes the delivery dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


class Uniform(Protocol):
    """The part of `random.Random` the backoff needs, so tests can inject their own."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class Backoff:
    base: float
    """Seconds after the first failure (nominal)."""
    cap: float
    """The longest nominal delay, in seconds."""
    max_age: timedelta
    """How long after being queued a delivery may still be attempted."""

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError("backoff needs 0 < base <= cap")

    def nominal_delay(self, attempts: int) -> float:
        """The delay before the next attempt once `attempts` (>= 1) have failed."""
        if attempts < 1:
            raise ValueError("attempts counts failures made, from 1")
        # Clamp the exponent before it grows: 2**1000 would still be exact but pointless.
        return min(self.cap, self.base * 2.0 ** min(attempts - 1, 64))

    def next_attempt_at(
        self, attempts: int, *, queued_at: datetime, now: datetime, rng: Uniform
    ) -> datetime | None:
        """When to try again after the `attempts`-th failure at `now`; None: give up (dead)."""
        deadline = queued_at + self.max_age
        if now >= deadline:
            return None
        nominal = self.nominal_delay(attempts)
        delay = rng.uniform(nominal / 2, nominal)
        return min(now + timedelta(seconds=delay), deadline)
