"""Retry delays: doubling to a cap, jitter within [nominal/2, nominal], the max-age rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from ivrcast.callbacks.backoff import Backoff

QUEUED = datetime(2025, 3, 1, tzinfo=UTC)
BACKOFF = Backoff(base=5.0, cap=3600.0, max_age=timedelta(hours=24))


class Fixed:
    """An rng that always answers the same fraction of the range."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a + (b - a) * self.fraction


def test_the_nominal_delay_doubles_up_to_the_cap() -> None:
    delays = [BACKOFF.nominal_delay(n) for n in range(1, 14)]
    assert delays[:5] == [5, 10, 20, 40, 80]
    assert delays[-3:] == [3600, 3600, 3600]
    assert BACKOFF.nominal_delay(10_000) == 3600


@pytest.mark.parametrize(("fraction", "seconds"), [(0.0, 20.0), (0.5, 30.0), (1.0, 40.0)])
def test_the_jitter_is_drawn_between_half_and_the_whole_nominal_delay(
    fraction: float, seconds: float
) -> None:
    rng = Fixed(fraction)
    now = QUEUED + timedelta(minutes=1)
    assert BACKOFF.next_attempt_at(4, queued_at=QUEUED, now=now, rng=rng) == now + timedelta(
        seconds=seconds
    )
    assert rng.calls == [(20.0, 40.0)]


def test_a_seeded_generator_stays_within_bounds() -> None:
    rng = random.Random(7)
    now = QUEUED + timedelta(hours=2)
    for attempts in range(1, 40):
        at = BACKOFF.next_attempt_at(attempts, queued_at=QUEUED, now=now, rng=rng)
        assert at is not None
        nominal = BACKOFF.nominal_delay(attempts)
        assert nominal / 2 <= (at - now).total_seconds() <= nominal


def test_the_last_retry_is_moved_to_the_deadline_then_the_delivery_is_dead() -> None:
    deadline = QUEUED + timedelta(hours=24)
    near_end = deadline - timedelta(seconds=10)
    assert BACKOFF.next_attempt_at(20, queued_at=QUEUED, now=near_end, rng=Fixed(1.0)) == deadline
    assert BACKOFF.next_attempt_at(21, queued_at=QUEUED, now=deadline, rng=Fixed(1.0)) is None
    later = deadline + timedelta(hours=1)
    assert BACKOFF.next_attempt_at(1, queued_at=QUEUED, now=later, rng=Fixed(0.0)) is None


def test_a_day_of_failures_is_about_thirty_attempts() -> None:
    now, attempts = QUEUED, 0
    rng = random.Random(1)
    while True:
        attempts += 1
        at = BACKOFF.next_attempt_at(attempts, queued_at=QUEUED, now=now, rng=rng)
        if at is None:
            break
        now = at
    assert now == QUEUED + timedelta(hours=24)
    assert 25 <= attempts <= 45


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="base <= cap"):
        Backoff(base=10, cap=5, max_age=timedelta(hours=1))
    with pytest.raises(ValueError, match="from 1"):
        BACKOFF.nominal_delay(0)
