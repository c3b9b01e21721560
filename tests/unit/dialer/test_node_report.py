"""A node's heartbeat report: its share of each trunk, channels in use, INVITEs per second."""

from __future__ import annotations

from ivrcast.config import TrunkSettings
from ivrcast.dialer.limits import TrunkState
from ivrcast.dialer.node_report import NodeReport


def trunk(name: str, share: float) -> TrunkState:
    settings = TrunkSettings.model_validate(
        {"name": name, "countries": ["id"], "proxy": "127.0.0.1:5070", "max_channels": 90,
         "max_cps": 30}
    )  # fmt: skip
    return TrunkState.create(settings, share)


def test_the_rate_is_the_invites_since_the_last_beat() -> None:
    main, spare = trunk("main", 1 / 3), trunk("spare", 1 / 3)
    report = NodeReport()
    first = report.build([main, spare], finished=0, now=100.0)
    assert first["trunks"]["main"] == {
        "channels": 30, "max_cps": 10.0, "active": 0, "cps": 0.0, "invites": 0
    }  # fmt: skip
    main.sent, main.active, spare.active = 25, 7, 2
    second = report.build([main, spare], finished=18, now=105.0)
    assert second["trunks"]["main"]["cps"] == 5.0
    assert second["trunks"]["main"]["active"] == 7
    assert second["trunks"]["spare"]["cps"] == 0.0
    assert second["calls"] == 9
    assert second["finished"] == 18
