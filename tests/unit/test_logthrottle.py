"""LogThrottle: one record per key per interval, the held-back count, bounded keys."""

from __future__ import annotations

from ivrcast.logthrottle import OVERFLOW, LogThrottle


class SteppedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_record_per_key_per_interval_with_the_count_held_back() -> None:
    clock = SteppedClock()
    throttle = LogThrottle(10.0, clock)
    admitted = [throttle.admit("a") for _ in range(5)]
    assert admitted == [0, None, None, None, None]
    assert throttle.admit("b") == 0  # keys are independent
    clock.now = 9.9
    assert throttle.admit("a") is None
    clock.now = 10.0
    assert throttle.admit("a") == 5
    throttle.admit("a")
    throttle.admit("a")
    assert throttle.drain() == [("a", 2)]
    assert throttle.drain() == []


def test_forged_keys_share_one_overflow_key_once_the_table_is_full() -> None:
    clock = SteppedClock()
    throttle = LogThrottle(10.0, clock, max_keys=3)
    assert [throttle.admit(f"10.0.0.{i}") for i in range(3)] == [0, 0, 0]
    assert throttle.admit("10.0.0.3") == 0  # the first record of the overflow key
    assert [throttle.admit(f"10.0.1.{i}") for i in range(100)] == [None] * 100
    assert throttle.drain() == [(OVERFLOW, 100)]
    clock.now = 10.0  # idle keys are forgotten and make room again
    assert throttle.admit("10.0.2.1") == 0
    assert throttle.admit("10.0.2.1") is None
