"""The dialer's in-memory voices: the G.711 audio of the voices recent calls played.

A claim round loads from the database only the voices it needs that are not cached,
then takes the audio of every voice it needs in one step (`for_round`), so making room
for the new ones can never evict a voice the same round's calls are about to play.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping

from ivrcast.rtp import EncodedAudio

VOICE_CACHE = 32  # voices kept in memory; a 5000-number task reuses one


class VoiceCache:
    """Least recently used voices, at most `capacity` of them between rounds."""

    def __init__(self, capacity: int = VOICE_CACHE) -> None:
        if capacity < 1:
            raise ValueError("a voice cache holds at least one voice")
        self.capacity = capacity
        self._audio: OrderedDict[int, EncodedAudio] = OrderedDict()

    def __len__(self) -> int:
        return len(self._audio)

    def __contains__(self, voice_id: object) -> bool:
        return voice_id in self._audio

    def missing(self, voice_ids: Collection[int]) -> set[int]:
        """Which of `voice_ids` must be loaded from the database."""
        return {voice_id for voice_id in voice_ids if voice_id not in self._audio}

    def for_round(
        self, needed: Collection[int], loaded: Mapping[int, tuple[bytes, bytes]]
    ) -> dict[int, EncodedAudio]:
        """The audio of every voice in `needed`, from the cache or from `loaded` (the
        PCMU and PCMA the round read for the voices `missing` named).

        The needed voices become the most recently used ones, and the cache then drops
        its least recently used voices beyond `capacity`: those are never needed by
        this round unless the round needs more voices than the cache holds, and the
        mapping returned keeps those alive for the round anyway. A needed voice found
        in neither place (deleted since its calls were claimed) is left out.
        """
        for voice_id, (pcmu, pcma) in loaded.items():
            if voice_id not in self._audio:
                self._audio[voice_id] = EncodedAudio(pcmu=pcmu, pcma=pcma)
        round_audio: dict[int, EncodedAudio] = {}
        for voice_id in needed:
            audio = self._audio.get(voice_id)
            if audio is not None:
                self._audio.move_to_end(voice_id)
                round_audio[voice_id] = audio
        while len(self._audio) > self.capacity:
            self._audio.popitem(last=False)
        return round_audio
