"""Receive statistics for one RTP stream: packets and loss.

Sequence tracking follows RFC 3550 Appendix A.1 (extended highest sequence number with
cycle counting, tolerant of reordering). This runs for every received packet of every
call, so the in-order case is a fast path and no interarrival jitter is computed.
"""

from __future__ import annotations

MAX_DROPOUT = 3000  # RFC 3550 A.1: a forward jump larger than this is a restart
MAX_MISORDER = 100  # RFC 3550 A.1: a backward step larger than this is a restart
SEQ_MOD = 1 << 16


class ReceiveStats:
    def __init__(self) -> None:
        self.packets_received = 0
        self._expected_before = 0  # packets expected in earlier runs (SSRC or restart)
        self._ssrc: int | None = None
        self._base_seq = 0
        self._max_seq = 0
        self._cycles = 0

    def add(self, ssrc: int, sequence_number: int) -> None:
        """Count one packet."""
        self.packets_received += 1
        if ssrc == self._ssrc and sequence_number == self._max_seq + 1:
            self._max_seq = sequence_number  # in order, no wrap: the common case
            return
        if ssrc != self._ssrc:
            self._restart(ssrc, sequence_number)
        else:
            delta = (sequence_number - self._max_seq) % SEQ_MOD
            if delta < MAX_DROPOUT:
                if sequence_number < self._max_seq:
                    self._cycles += SEQ_MOD
                self._max_seq = sequence_number
            elif delta <= SEQ_MOD - MAX_MISORDER:
                # A big jump: the sender restarted its sequence; start a new run.
                self._restart(ssrc, sequence_number)

    def _restart(self, ssrc: int, sequence_number: int) -> None:
        if self._ssrc is not None:
            self._expected_before += self._expected_in_run()
        self._ssrc = ssrc
        self._base_seq = sequence_number
        self._max_seq = sequence_number
        self._cycles = 0

    def _expected_in_run(self) -> int:
        return self._cycles + self._max_seq - self._base_seq + 1

    @property
    def packets_expected(self) -> int:
        if self._ssrc is None:
            return 0
        return self._expected_before + self._expected_in_run()

    @property
    def packets_lost(self) -> int:
        """Expected minus received, never below 0 (duplicates can make it negative)."""
        return max(self.packets_expected - self.packets_received, 0)
