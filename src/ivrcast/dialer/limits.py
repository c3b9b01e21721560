"""Per-trunk limits: simultaneous channels and calls per second.

`Pacer` is a token bucket of depth one (a GCRA): INVITEs through a trunk are spaced at
least `1 / rate` seconds apart, and idle time earns no burst. So in any span of T
seconds a trunk sends at most `floor(T * rate) + 1` INVITEs, which is the bound the
tests check. Times are the event loop's monotonic seconds, passed in, so the
arithmetic is testable without a loop.

With several dialer nodes sharing a trunk, each node takes an equal share of the
trunk's channels and rate (`share`), counted from the live nodes' heartbeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ivrcast.config import TrunkSettings


class Pacer:
    """Hands out send times at most `rate` per second."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._next = -math.inf

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    def reserve(self, now: float) -> float:
        """The time at which the next INVITE may leave; reserves that slot."""
        at = max(now, self._next)
        self._next = at + 1.0 / self.rate
        return at

    def available(self, now: float, horizon: float) -> int:
        """How many slots fall within `[now, now + horizon]` without reserving them."""
        first = max(now, self._next)
        if first > now + horizon:
            return 0
        return int((now + horizon - first) * self.rate) + 1


@dataclass
class TrunkState:
    """One trunk's limits on this node and the calls it carries now."""

    settings: TrunkSettings
    pacer: Pacer
    channels: int
    reserved: int = 0  # calls claimed for this trunk and not yet ended
    active: int = 0  # of those, holding a channel (about to send or in progress)
    sent: int = 0  # INVITEs this node has sent on the trunk (its heartbeat reports the rate)

    @classmethod
    def create(cls, settings: TrunkSettings, share: float = 1.0) -> TrunkState:
        state = cls(settings=settings, pacer=Pacer(settings.max_cps), channels=1)
        state.set_share(share)
        return state

    @property
    def name(self) -> str:
        return self.settings.name

    def set_share(self, share: float) -> None:
        """Take `share` (0 < share <= 1) of the trunk's channels and rate."""
        self.channels = max(1, int(self.settings.max_channels * share))
        self.pacer.set_rate(self.settings.max_cps * share)

    @property
    def free_channels(self) -> int:
        return max(0, self.channels - self.active)

    def allowance(self, now: float, horizon: float) -> int:
        """Calls worth claiming for this trunk now: channels no claimed call will use,
        and no more than the pacer can send within `horizon`."""
        unclaimed = self.channels - self.reserved
        return max(0, min(unclaimed, self.pacer.available(now, horizon)))
