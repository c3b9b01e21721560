"""Log lines that a peer cannot multiply.

When a peer decides how often a "dropped ..." line is written (a host sending garbage
SIP, forged RTP, a callback URL that always fails), one line per event lets that peer
fill the disk and bury everything else. `LogThrottle` lets one record per key (a source
address, a call, a URL's origin) through per `interval` and counts the ones it holds
back, so that the next record says how many were suppressed and `drain()` can report the
rest when the owner closes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

DEFAULT_MAX_KEYS = 1024
OVERFLOW = "<other sources>"  # the key used when more distinct keys are live than allowed


class LogThrottle:
    def __init__(
        self,
        interval: float,
        monotonic: Callable[[], float],
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        """`interval`: seconds between two records of one key; `monotonic`: the clock
        (injected, so tests step it); `max_keys`: memory bound when keys are forged."""
        self._interval = interval
        self._monotonic = monotonic
        self._max_keys = max_keys
        self._logged_at: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def admit(self, key: Hashable) -> int | None:
        """Should a record for `key` be written now? None: no (it is counted); else the
        number of records of `key` held back since the last one written."""
        now = self._monotonic()
        if key not in self._logged_at and len(self._logged_at) >= self._max_keys:
            self._forget_idle(now)
            if len(self._logged_at) >= self._max_keys:
                key = OVERFLOW
        last = self._logged_at.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._logged_at[key] = now
        return self._suppressed.pop(key, 0)

    def drain(self) -> list[tuple[Hashable, int]]:
        """The keys with records held back and not yet reported, and how many; resets."""
        pending = [(key, count) for key, count in self._suppressed.items() if count]
        self._suppressed.clear()
        return pending

    def _forget_idle(self, now: float) -> None:
        idle = [key for key, at in self._logged_at.items() if now - at >= self._interval]
        for key in idle:
            if key not in self._suppressed:
                del self._logged_at[key]
