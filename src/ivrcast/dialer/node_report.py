"""What a dialer node reports at each heartbeat: its calls, and per trunk its share of the
channels and rate, the channels in use and the INVITEs per second since the last beat.

The report is stored on the node's row (`nodes.stats`, JSON), so the console and
`/metrics` of any API process show every node of the fleet, wherever it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ivrcast.dialer.limits import TrunkState


class NodeReport:
    """Builds the heartbeat report; remembers the last one to turn counts into rates."""

    def __init__(self) -> None:
        self._last_at: float | None = None
        self._last_sent: dict[str, int] = {}

    def build(self, trunks: Iterable[TrunkState], *, finished: int, now: float) -> dict[str, Any]:
        """`now` is monotonic seconds; `finished` counts the calls this node has ended."""
        elapsed = None if self._last_at is None else now - self._last_at
        report_trunks: dict[str, dict[str, float | int]] = {}
        for trunk in trunks:
            sent_before = self._last_sent.get(trunk.name, trunk.sent)
            cps = (trunk.sent - sent_before) / elapsed if elapsed else 0.0
            report_trunks[trunk.name] = {
                "channels": trunk.channels,
                "max_cps": round(trunk.pacer.rate, 3),
                "active": trunk.active,
                "cps": round(cps, 2),
                "invites": trunk.sent,
            }
            self._last_sent[trunk.name] = trunk.sent
        self._last_at = now
        return {
            "calls": sum(trunk["active"] for trunk in report_trunks.values()),
            "finished": finished,
            "trunks": report_trunks,
        }
