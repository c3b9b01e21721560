"""The dialer's voice cache: a round gets every voice it needs, even from a full cache."""

from __future__ import annotations

from ivrcast.dialer.voice_cache import VOICE_CACHE, VoiceCache


def audio(voice_id: int) -> tuple[bytes, bytes]:
    return bytes([voice_id % 256]) * 8, bytes([(voice_id + 1) % 256]) * 8


def full_cache() -> VoiceCache:
    """Voices 1..32 cached, 1 the least recently used."""
    cache = VoiceCache()
    for voice_id in range(1, VOICE_CACHE + 1):
        cache.for_round({voice_id}, {voice_id: audio(voice_id)})
    assert len(cache) == VOICE_CACHE
    return cache


def test_a_round_needing_the_oldest_voice_and_a_new_one_gets_both() -> None:
    cache = full_cache()
    new = VOICE_CACHE + 1
    needed = {1, new}
    assert cache.missing(needed) == {new}
    got = cache.for_round(needed, {new: audio(new)})
    assert set(got) == needed
    assert got[1].pcmu == audio(1)[0]
    assert got[new].pcma == audio(new)[1]
    # Room was made by dropping the least recently used voice the round did not need.
    assert len(cache) == VOICE_CACHE
    assert 1 in cache
    assert new in cache
    assert 2 not in cache


def test_a_round_needing_more_voices_than_the_cache_holds_still_gets_them_all() -> None:
    cache = VoiceCache(capacity=2)
    loaded = {voice_id: audio(voice_id) for voice_id in (1, 2, 3)}
    got = cache.for_round({1, 2, 3}, loaded)
    assert set(got) == {1, 2, 3}
    assert len(cache) == 2


def test_voices_used_recently_outlive_older_ones() -> None:
    cache = VoiceCache(capacity=2)
    cache.for_round({1}, {1: audio(1)})
    cache.for_round({2}, {2: audio(2)})
    cache.for_round({1}, {})
    cache.for_round({3}, {3: audio(3)})
    assert 1 in cache
    assert 3 in cache
    assert 2 not in cache
