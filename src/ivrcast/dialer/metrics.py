"""The dialer process's own metrics, written as snapshots for the API's `/metrics`
(`ivrcast.metric_snapshots` explains how they get there)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ivrcast.metric_snapshots import remove_snapshot, write_snapshot

SNAPSHOT_INTERVAL = 1.0


class DialerMetrics:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.registry = CollectorRegistry(auto_describe=True)
        self.invites = Counter(
            "ivrcast_dialer_invites",
            "INVITEs sent (first attempts and failovers); its rate is calls per second.",
            ["trunk"],
            registry=self.registry,
        )
        self.finished = Counter(
            "ivrcast_dialer_calls_finished",
            "Calls this dialer ended, by final state.",
            ["trunk", "status"],
            registry=self.registry,
        )
        self.failovers = Counter(
            "ivrcast_dialer_failovers",
            "Calls moved to another trunk after a trunk failure.",
            ["from_trunk", "to_trunk"],
            registry=self.registry,
        )
        self.rtp_rejected = Counter(
            "ivrcast_dialer_rtp_rejected",
            "RTP packets dropped because a source other than the call's far end sent them.",
            ["trunk"],
            registry=self.registry,
        )
        self.active = Gauge(
            "ivrcast_dialer_active_calls",
            "Calls in progress on this dialer (INVITE sent, not ended).",
            ["trunk"],
            registry=self.registry,
        )
        self.claim_seconds = Histogram(
            "ivrcast_dialer_claim_seconds",
            "Duration of one claim round (due tasks, expiry, claim) in the database.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.claimed = Counter(
            "ivrcast_dialer_claimed", "Calls claimed for dialing.", registry=self.registry
        )
        self.queue_wait = Histogram(
            "ivrcast_dialer_queue_wait_seconds",
            "Time from a call's submission to its claim.",
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
            registry=self.registry,
        )

    def write_snapshot(self, data_dir: Path) -> None:
        write_snapshot(self.registry, data_dir, self.node_id)

    def remove_snapshot(self, data_dir: Path) -> None:
        remove_snapshot(data_dir, self.node_id)
