"""Identifiers of calls: UUIDv7 (RFC 9562 §5.7), generated a batch at a time.

A call's `uuid` is what customers dedupe records on, so it must be unique everywhere;
it is also a unique index that every submission writes 5000 entries into. Random
(version 4) UUIDs land all over that index; time-ordered ones append to its end, which
is cheaper for SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import os
from datetime import datetime

_COUNTER_BITS = 26  # RFC 9562 §6.2 method 1: 12 bits in rand_a, 14 at the top of rand_b
_LOW_BITS = 14


_CACHED_COUNTERS = 1 << 16
"""Counter texts kept ready: a submission's 5000 (or a retry round's) and far more."""

_counter_texts: list[str] = []
"""Item i is counter i as it appears in a UUID (`xxx-8xxx-`), built on first need."""


def _counters(first: int, stop: int) -> list[str]:
    """The texts of counters `first` to `stop - 1`: formatting each costs more than the
    rest of a UUID, and they are the same in every batch, so they are kept."""
    global _counter_texts
    known = _counter_texts
    if len(known) < min(stop, _CACHED_COUNTERS):
        # A new list replaces the old in one assignment: a thread reading the old one
        # meanwhile sees correct texts, only fewer of them.
        known = known + _counter_range(len(known), min(stop, _CACHED_COUNTERS))
        _counter_texts = known
    if stop <= len(known):
        return known[first:stop]
    return known[first:] + _counter_range(max(first, len(known)), stop)


def _counter_range(start: int, stop: int) -> list[str]:
    mask = (1 << _LOW_BITS) - 1
    return [f"{i >> _LOW_BITS:03x}-{0x8000 | (i & mask):04x}-" for i in range(start, stop)]


def time_ordered_uuids(count: int, at: datetime, *, first: int = 0) -> list[str]:
    """`count` UUIDv7 strings for instant `at`, in increasing order.

    `first` is the counter of the first: a batch made in parts (`first` 0, then the
    count of the first part, ...) is the batch made at once, but for its random bits.

    Layout: 48-bit Unix milliseconds, version 7, the counter's high 12 bits (rand_a),
    variant 0b10, its low 14 bits, then 48 random bits (one `os.urandom` for the batch).
    Built as hex text directly, since this runs 5000 times per submission.
    """
    if first + count >= 1 << _COUNTER_BITS:
        raise ValueError(f"at most {(1 << _COUNTER_BITS) - 1} uuids per batch")
    unix_ms = f"{int(at.timestamp() * 1000) & ((1 << 48) - 1):012x}"
    head = f"{unix_ms[:8]}-{unix_ms[8:]}-7"
    entropy = os.urandom(6 * count).hex()
    return [
        head + counter + entropy[12 * i : 12 * i + 12]
        for i, counter in enumerate(_counters(first, first + count))
    ]
