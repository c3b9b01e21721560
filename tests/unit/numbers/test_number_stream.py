"""`NumberStream`: a list decided chunk by chunk comes to what `parse_destnumbers` says."""

from __future__ import annotations

import random

import pytest

from ivrcast.numbers import NumberStream, get_nation, parse_destnumbers
from ivrcast.numbers.destnumbers import CHUNK


def _mixed_list(rng: random.Random, count: int) -> str:
    """Valid numbers in several shapes, invalid items, and repeats near and far."""
    items: list[str] = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.1 and items:
            items.append(rng.choice(items))
        elif roll < 0.15:
            items.append(f"13{i}")
        elif roll < 0.3:
            items.append(f"+62 812 {i:08d}")
        elif roll < 0.5:
            items.append(f"62812{i:08d}")
        else:
            items.append(f"0812{i:08d}")
    return ",".join(items)


@pytest.mark.parametrize("count", [1, CHUNK - 1, CHUNK, 3 * CHUNK + 7, 5000])
def test_the_numbers_taken_chunk_by_chunk_are_those_parsed_at_once(count: int) -> None:
    nation = get_nation("id")
    raw = _mixed_list(random.Random(count), count)
    stream = NumberStream(raw, nation)
    assert stream.undecided
    taken = list(stream)
    whole = parse_destnumbers(raw, nation)
    assert taken == list(zip(whole.valid, whole.submitted, strict=True))
    assert stream.parsed() == whole


def test_all_valid_and_distinct_chunks_repeating_an_earlier_chunk_are_deduplicated() -> None:
    """Each chunk alone is the easy case (distinct, usual shapes); together they repeat."""
    nation = get_nation("id")
    chunk = [f"0812{i:08d}" for i in range(CHUNK)]
    stream = NumberStream(",".join(chunk + chunk), nation)
    assert len(list(stream)) == CHUNK
    assert stream.parsed().duplicates == CHUNK


def test_the_outcome_is_refused_before_every_item_is_decided() -> None:
    stream = NumberStream(",".join(f"0812{i:08d}" for i in range(CHUNK + 1)), get_nation("id"))
    first = next(iter(stream))
    assert first == ("+6281200000000", "081200000000")
    assert not stream.undecided
    with pytest.raises(RuntimeError):
        stream.parsed()
