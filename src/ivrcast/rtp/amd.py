"""Answering-machine detection from the callee's first seconds of audio (docs/amd.md).

A media tap on the stream: `received` appends the callee's G.711 bytes (one copy per
packet, and only for calls that asked for detection); every `BATCH_TICKS` ticks of the
media clock the bytes are decoded with numpy and cut into 20 ms frames, and each frame
gets two numbers in one vectorised pass: its level (dBFS) and how much of its energy one
narrow band holds (a beep is a pure tone, speech is not). A small state machine then
walks those frames, as the classic detectors do:

- speech longer than `greeting_ms` without a pause, or more than `max_words` words:
  a machine reading its greeting;
- a short utterance (a "hello?") followed by `after_greeting_silence_ms` of silence:
  a person, waiting for an answer;
- a beep: a machine;
- nothing said for `initial_silence_ms`, or no decision within `total_ms`: unknown.

With `wait_for_beep`, after a "machine" decision the detector keeps listening until
the greeting's beep ends or the greeting falls silent for `greeting_end_silence_ms`
(or `beep_timeout_ms` passes) and then calls `on_ready`: the moment to leave a message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ivrcast.rtp.g711 import ALAW_TO_LINEAR, FRAME_SAMPLES, ULAW_TO_LINEAR

AnsweredBy = Literal["human", "machine", "unknown"]

FRAME_MS = 20
BATCH_TICKS = 5  # analyse every 100 ms: numpy per batch, never per packet
RATE = 8000
TONE_LOW_HZ, TONE_HIGH_HZ = 300.0, 2500.0  # where answering machines put their beeps
TONE_BINS = 2  # bins each side of the peak counted as "the band" (Hann main lobe)
FULL_SCALE = 32768.0

_TABLES = {
    "PCMU": np.array(ULAW_TO_LINEAR, dtype=np.float64),
    "PCMA": np.array(ALAW_TO_LINEAR, dtype=np.float64),
}
_WINDOW = np.hanning(FRAME_SAMPLES)
_FREQUENCIES = np.fft.rfftfreq(FRAME_SAMPLES, 1 / RATE)


@dataclass(frozen=True)
class AmdConfig:
    """The detector's thresholds; `[amd]` in the configuration (docs/amd.md)."""

    total_ms: int = 4000
    initial_silence_ms: int = 2500
    greeting_ms: int = 2200
    after_greeting_silence_ms: int = 700
    max_words: int = 5
    min_word_ms: int = 100
    between_words_silence_ms: int = 60
    speech_dbfs: float = -40.0
    tone_purity: float = 0.8
    beep_min_ms: int = 120
    greeting_end_silence_ms: int = 1500
    beep_timeout_ms: int = 20000


@dataclass(frozen=True)
class Frames:
    """Per 20 ms frame: its level in dBFS, the share of its energy in its strongest
    narrow band, and that band's frequency."""

    dbfs: npt.NDArray[np.float64]
    purity: npt.NDArray[np.float64]
    peak_hz: npt.NDArray[np.float64]


def analyse(samples: npt.NDArray[np.float64]) -> Frames:
    """The features of every whole frame of `samples` (linear 16-bit values), at once."""
    count = len(samples) // FRAME_SAMPLES
    frames = samples[: count * FRAME_SAMPLES].reshape(count, FRAME_SAMPLES)
    power = np.mean(frames * frames, axis=1)
    dbfs = 10 * np.log10(power / (FULL_SCALE * FULL_SCALE) + 1e-12)
    spectrum = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    peak = np.argmax(spectrum, axis=1)
    total = spectrum.sum(axis=1) + 1e-12
    cumulative = np.concatenate([np.zeros((count, 1)), np.cumsum(spectrum, axis=1)], axis=1)
    low = np.clip(peak - TONE_BINS, 0, spectrum.shape[1])
    high = np.clip(peak + TONE_BINS + 1, 0, spectrum.shape[1])
    rows = np.arange(count)
    band = cumulative[rows, high] - cumulative[rows, low]
    return Frames(dbfs=dbfs, purity=band / total, peak_hz=_FREQUENCIES[peak])


class FrameClassifier:
    """The decision, frame by frame, from `Frames` (no I/O, no clock: `elapsed_ms` is
    the media clock's count, passed in)."""

    def __init__(self, config: AmdConfig) -> None:
        self.config = config
        self.frames_seen = 0
        self._voice_run = 0
        self._silence_run = 0
        self._in_word = False
        self._heard_speech = False
        self._words = 0
        self._utterance_ms = 0
        self._tone_run = 0
        self._tone_hz = 0.0
        self.beep_heard = False
        self.reason = ""

    def _is_tone(self, dbfs: float, purity: float, hz: float) -> bool:
        return (
            dbfs > self.config.speech_dbfs
            and purity >= self.config.tone_purity
            and TONE_LOW_HZ <= hz <= TONE_HIGH_HZ
        )

    def _track_tone(self, tone: bool, hz: float) -> bool:
        """Count frames of one steady tone; True when a beep has just ended (or is long
        enough to count while it still sounds)."""
        config = self.config
        if tone and (self._tone_run == 0 or abs(hz - self._tone_hz) <= 60):
            self._tone_run += FRAME_MS
            self._tone_hz = hz
            return False
        was_beep = self._tone_run >= config.beep_min_ms
        self._tone_run = FRAME_MS if tone else 0
        self._tone_hz = hz
        return was_beep

    def decide(self, frames: Frames) -> AnsweredBy | None:
        """Walk new frames; the decision once there is one."""
        config = self.config
        for dbfs, purity, hz in zip(
            frames.dbfs.tolist(), frames.purity.tolist(), frames.peak_hz.tolist(), strict=True
        ):
            self.frames_seen += 1
            tone = self._is_tone(dbfs, purity, hz)
            if self._track_tone(tone, hz) or self._tone_run >= 3 * config.beep_min_ms:
                self.beep_heard = True
                self.reason = "a beep"
                return "machine"
            if dbfs > config.speech_dbfs and not tone:
                self._voice_run += FRAME_MS
                self._silence_run = 0
                if not self._in_word and self._voice_run >= config.min_word_ms:
                    self._in_word = True
                    self._heard_speech = True
                    self._words += 1
                    self._utterance_ms += self._voice_run - FRAME_MS
                if self._in_word:
                    self._utterance_ms += FRAME_MS
                if self._utterance_ms >= config.greeting_ms:
                    self.reason = f"{self._utterance_ms} ms of speech with no long pause"
                    return "machine"
                if self._words > config.max_words:
                    self.reason = f"{self._words} words"
                    return "machine"
            else:
                self._silence_run += FRAME_MS
                if self._silence_run >= config.between_words_silence_ms:
                    self._in_word = False
                    self._voice_run = 0
                if self._heard_speech and self._silence_run >= config.after_greeting_silence_ms:
                    self.reason = f"{self._words} word(s), {self._utterance_ms} ms, then silence"
                    return "human"
                if not self._heard_speech and self._silence_run >= config.initial_silence_ms:
                    self.reason = "nothing said"
                    return "unknown"
        return None

    def greeting_over(self, frames: Frames) -> bool:
        """After a "machine" decision: has the greeting ended (its beep ended, or it fell
        silent for `greeting_end_silence_ms`)?"""
        config = self.config
        for dbfs, purity, hz in zip(
            frames.dbfs.tolist(), frames.purity.tolist(), frames.peak_hz.tolist(), strict=True
        ):
            tone = self._is_tone(dbfs, purity, hz)
            if self._track_tone(tone, hz):
                return True
            if dbfs > config.speech_dbfs:
                self._silence_run = 0
            else:
                self._silence_run += FRAME_MS
                if self._silence_run >= config.greeting_end_silence_ms:
                    return True
        return False


class AnsweringMachineDetector:
    """The media tap (see the module docstring). `on_result(answered_by, ms)` is called
    once; with `wait_for_beep`, `on_ready()` follows when a message may be left."""

    def __init__(
        self,
        config: AmdConfig,
        codec: str,
        *,
        on_result: Callable[[AnsweredBy, int], None],
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self._table = _TABLES[codec]
        self._classifier = FrameClassifier(config)
        self._on_result = on_result
        self._on_ready = on_ready
        self._pending = bytearray()
        self._ticks = 0
        self.result: AnsweredBy | None = None
        self.result_ms = 0
        self.done = False

    @property
    def reason(self) -> str:
        return self._classifier.reason

    @property
    def elapsed_ms(self) -> int:
        return self._ticks * FRAME_MS

    def sent(self, frame: bytes | memoryview) -> None:
        """A tick of the media clock: the detector's time."""
        if self.done:
            return
        self._ticks += 1
        if self._ticks % BATCH_TICKS == 0:
            self._analyse()

    def received(self, ssrc: int, timestamp: int, payload: memoryview) -> None:
        if not self.done:
            self._pending += payload

    def _analyse(self) -> None:
        whole = len(self._pending) // FRAME_SAMPLES * FRAME_SAMPLES
        codes = np.frombuffer(bytes(self._pending[:whole]), dtype=np.uint8)
        del self._pending[:whole]
        frames = analyse(self._table[codes])
        if self.result is None:
            decision = self._classifier.decide(frames)
            if decision is None and self._timed_out():
                decision = "unknown"
                self._classifier.reason = self._classifier.reason or "no decision in time"
            if decision is not None:
                self._decided(decision)
        elif (
            self._classifier.greeting_over(frames)
            or self.elapsed_ms - self.result_ms >= self.config.beep_timeout_ms
        ):
            self._ready()

    def _timed_out(self) -> bool:
        config = self.config
        if self.elapsed_ms >= config.total_ms:
            return True
        # No audio at all (no packets) counts as silence.
        heard_ms = self._classifier.frames_seen * FRAME_MS
        return heard_ms == 0 and self.elapsed_ms >= config.initial_silence_ms

    def _decided(self, decision: AnsweredBy) -> None:
        self.result = decision
        self.result_ms = self.elapsed_ms
        if decision != "machine" or self._on_ready is None:
            self.done = True
        self._on_result(decision, self.result_ms)
        if not self.done and self._classifier.beep_heard:
            # Its beep is what told it apart: the greeting is over already.
            self._ready()

    def _ready(self) -> None:
        self.done = True
        if self._on_ready is not None:
            self._on_ready()
