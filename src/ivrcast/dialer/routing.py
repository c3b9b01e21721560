"""Which trunk carries a call, where it goes when that trunk fails, and its caller ID.

Trunks of a country share its calls by weight with smooth weighted round robin (the
nginx upstream algorithm): deterministic, and interleaved rather than in runs, so a 3:1
split sends the third call to the light trunk, not the fourth. A call whose trunk failed
before any ringing (`CallOutcome.trunk_failed`: 5xx, no response, transport error) goes
to the next trunk of the country it has not tried, heaviest first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable

from ivrcast.dialer.limits import TrunkState

ANONYMOUS = "anonymous"  # RFC 3323 §4.1.1.3: the From user when no caller ID is known


class Router:
    def __init__(self, trunks: Iterable[TrunkState]) -> None:
        self.trunks: dict[str, TrunkState] = {}
        self._by_country: dict[str, list[TrunkState]] = {}
        for trunk in trunks:
            self.trunks[trunk.name] = trunk
            for country in trunk.settings.countries:
                self._by_country.setdefault(country, []).append(trunk)
        # Smooth WRR "current weight" per (country, trunk).
        self._current: dict[tuple[str, str], int] = {}

    @property
    def countries(self) -> set[str]:
        return set(self._by_country)

    def trunks_for(self, country: str) -> list[TrunkState]:
        return list(self._by_country.get(country, ()))

    def pick(self, country: str, usable: Callable[[TrunkState], bool]) -> TrunkState | None:
        """The next trunk of `country` by weight, among those `usable` says may take a call."""
        candidates = [t for t in self._by_country.get(country, ()) if usable(t)]
        if not candidates:
            return None
        total = 0
        best: TrunkState | None = None
        best_weight = 0
        for trunk in candidates:
            key = (country, trunk.name)
            weight = self._current.get(key, 0) + trunk.settings.weight
            self._current[key] = weight
            total += trunk.settings.weight
            if best is None or weight > best_weight:
                best, best_weight = trunk, weight
        assert best is not None
        self._current[(country, best.name)] -= total
        return best

    def failover(self, country: str, tried: Collection[str]) -> TrunkState | None:
        """The trunk to retry a call on after a trunk failure, or None when every
        trunk of the country has been tried."""
        remaining = [t for t in self._by_country.get(country, ()) if t.name not in tried]
        if not remaining:
            return None
        # Stable sort: equal weights keep the configured order.
        return sorted(remaining, key=lambda t: -t.settings.weight)[0]


def caller_id(disnumber: str | None, trunk: TrunkState, number: str) -> str:
    """The task's `disnumber` when given, else the number of the trunk's pool that
    `number` (E.164) hashes to. Sticky: every round of a number presents the same caller
    ID, on any node and after a restart (a stable hash, not Python's salted `hash`),
    while different numbers spread evenly over the pool."""
    if disnumber:
        return disnumber
    pool = trunk.settings.callerids
    if not pool:
        return ANONYMOUS
    digest = hashlib.sha256(number.encode()).digest()
    return pool[int.from_bytes(digest[:8], "big") % len(pool)]
