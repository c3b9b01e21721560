"""Pacing, channels, weighted trunk choice, failover order and caller IDs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from ivrcast.config import TrunkSettings
from ivrcast.dialer.limits import Pacer, TrunkState
from ivrcast.dialer.routing import ANONYMOUS, Router, caller_id


def trunk(name: str, *, countries: tuple[str, ...] = ("id",), **kw: object) -> TrunkState:
    settings = TrunkSettings.model_validate(
        {"name": name, "countries": list(countries), "proxy": "127.0.0.1:5070", **kw}
    )
    return TrunkState.create(settings)


def test_pacer_spaces_slots_by_the_rate_and_earns_no_burst_when_idle() -> None:
    pacer = Pacer(10.0)
    assert pacer.reserve(100.0) == 100.0
    assert pacer.reserve(100.0) == pytest.approx(100.1)
    assert pacer.reserve(100.0) == pytest.approx(100.2)
    # After a long idle spell, the next slot is now, and the one after 1/rate later.
    assert pacer.reserve(500.0) == 500.0
    assert pacer.reserve(500.0) == pytest.approx(500.1)


def test_pacer_bound_holds_for_any_window() -> None:
    rate = 7.0
    pacer = Pacer(rate)
    times = [pacer.reserve(0.0) for _ in range(200)]
    for i, start in enumerate(times):
        inside = [t for t in times[i:] if t - start < 1.0]
        assert len(inside) <= int(rate) + 1


def test_pacer_available_counts_slots_within_the_horizon() -> None:
    pacer = Pacer(10.0)
    assert pacer.available(0.0, 0.4) == 5  # 0.0, 0.1, 0.2, 0.3, 0.4
    for _ in range(5):
        pacer.reserve(0.0)
    assert pacer.available(0.0, 0.4) == 0
    assert pacer.available(0.1, 0.4) == 1


def test_allowance_is_the_lesser_of_unclaimed_channels_and_pacer_slots() -> None:
    state = trunk("a", max_channels=3, max_cps=100)
    assert state.allowance(0.0, 0.4) == 3
    state.reserved = 2
    assert state.allowance(0.0, 0.4) == 1
    slow = trunk("b", max_channels=50, max_cps=2)
    assert slow.allowance(0.0, 0.4) == 1


def test_share_splits_channels_and_rate_among_nodes() -> None:
    state = trunk("a", max_channels=30, max_cps=20)
    state.set_share(1 / 3)
    assert state.channels == 10
    assert abs(state.pacer.rate - 20 / 3) < 1e-9
    state.set_share(1 / 100)
    assert state.channels == 1


def test_weighted_round_robin_splits_by_weight_interleaved() -> None:
    heavy, light = trunk("heavy", weight=3), trunk("light", weight=1)
    router = Router([heavy, light])
    picks = [router.pick("id", lambda t: True) for _ in range(8)]
    names = [p.name for p in picks if p is not None]
    assert Counter(names) == {"heavy": 6, "light": 2}
    assert names[:4].count("light") == 1


def test_pick_skips_trunks_without_capacity_and_other_countries() -> None:
    a, b = trunk("a"), trunk("b", countries=("in",))
    router = Router([a, b])
    assert router.pick("id", lambda t: t.name != "a") is None
    assert router.pick("in", lambda t: True) is b
    assert router.pick("vn", lambda t: True) is None


def test_failover_goes_to_untried_trunks_heaviest_first() -> None:
    a, b, c = trunk("a", weight=1), trunk("b", weight=5), trunk("c", weight=2)
    router = Router([a, b, c])
    assert router.failover("id", ["a"]) is b
    assert router.failover("id", ["b"]) is c
    assert router.failover("id", ["b", "c"]) is a
    assert router.failover("id", ["a", "b", "c"]) is None


def test_caller_id_is_the_disnumber_else_the_pool_number_the_callee_hashes_to() -> None:
    pooled = trunk("a", callerids=["1001", "1002", "1003"])
    assert caller_id("5550", pooled, "+6281200000001") == "5550"
    assert caller_id("", trunk("b"), "+6281200000001") == ANONYMOUS
    # Sticky: the same number always gets the same caller ID (every round of it)...
    numbers = [f"+62812{n:07d}" for n in range(3000)]
    first = [caller_id(None, pooled, number) for number in numbers]
    assert first == [caller_id(None, pooled, number) for number in numbers]
    # ...while numbers spread over the whole pool, about evenly.
    spread = Counter(first)
    assert set(spread) == {"1001", "1002", "1003"}
    assert all(800 < count < 1200 for count in spread.values())


def test_the_sticky_caller_id_is_the_same_in_another_process() -> None:
    """Another node, or this one after a restart (Python salts `hash()` per process)."""
    script = (
        "from ivrcast.config import TrunkSettings\n"
        "from ivrcast.dialer.limits import TrunkState\n"
        "from ivrcast.dialer.routing import caller_id\n"
        "t = TrunkState.create(TrunkSettings.model_validate({'name': 'a', 'countries': ['id'],"
        " 'proxy': '127.0.0.1:5070', 'callerids': ['1001', '1002', '1003']}))\n"
        "print(','.join(caller_id(None, t, f'+62812{n:07d}') for n in range(200)))\n"
    )
    pooled = trunk("a", callerids=["1001", "1002", "1003"])
    here = ",".join(caller_id(None, pooled, f"+62812{n:07d}") for n in range(200))
    for seed in ("1", "2"):
        there = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        assert there == here
