"""Answering-machine detection on synthetic audio fed as the stream feeds it: one packet
of the callee and one tick of the media clock per 20 ms. Speech is stood in for by
noise in bursts (no single frequency), a beep by a pure tone."""

from __future__ import annotations

import numpy as np
import pytest

from ivrcast.config import Settings
from ivrcast.dialer.loop import amd_config
from ivrcast.rtp.amd import AmdConfig, AnsweredBy, AnsweringMachineDetector
from ivrcast.rtp.g711 import FRAME_SAMPLES, encode_ulaw

RATE = 8000
RNG = np.random.default_rng(12)


def silence(ms: int) -> list[int]:
    return [0] * (RATE * ms // 1000)


def talk(ms: int, level: float = 6000) -> list[int]:
    return [int(v) for v in RNG.normal(0, level, RATE * ms // 1000).clip(-32000, 32000)]


def tone(ms: int, hz: float = 1000) -> list[int]:
    t = np.arange(RATE * ms // 1000) / RATE
    return [int(v) for v in 10000 * np.sin(2 * np.pi * hz * t)]


class Run:
    def __init__(self, config: AmdConfig | None = None, *, beep: bool = False) -> None:
        self.results: list[tuple[AnsweredBy, int]] = []
        self.ready_at: int | None = None
        self.detector = AnsweringMachineDetector(
            config or AmdConfig(),
            "PCMU",
            on_result=lambda by, ms: self.results.append((by, ms)),
            on_ready=self._ready if beep else None,
        )

    def _ready(self) -> None:
        self.ready_at = self.detector.elapsed_ms

    def play(self, samples: list[int], *, after_ms: int = 6000) -> None:
        """The callee says `samples`, then nothing (no packets) for `after_ms`."""
        audio = encode_ulaw(samples)
        for start in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
            self.detector.received(1, start, memoryview(audio[start : start + FRAME_SAMPLES]))
            self.detector.sent(b"")
        for _ in range(after_ms // 20):
            self.detector.sent(b"")


def test_a_short_hello_then_silence_is_a_person() -> None:
    run = Run()
    run.play(silence(500) + talk(600) + silence(3000))
    ((by, ms),) = run.results
    assert by == "human"
    assert 1700 <= ms <= 2000  # 0.5 s + 0.6 s + 0.7 s of silence, in 100 ms batches


def test_a_long_greeting_is_a_machine() -> None:
    run = Run()
    run.play(silence(300) + talk(4000))
    assert run.results == [("machine", 2500)]  # 2.2 s of speech after 0.3 s of silence


def test_many_words_are_a_machine() -> None:
    run = Run(AmdConfig(greeting_ms=5000))
    words: list[int] = []
    for _ in range(8):
        words += talk(250) + silence(200)
    run.play(silence(300) + words)
    ((by, _),) = run.results
    assert by == "machine"
    assert "6 words" in run.detector.reason


def test_a_beep_is_a_machine() -> None:
    run = Run()
    run.play(silence(300) + tone(400) + silence(3000))
    ((by, _),) = run.results
    assert by == "machine"
    assert run.detector.reason == "a beep"


def test_silence_is_unknown_never_machine() -> None:
    run = Run()
    run.play(silence(4000))
    assert run.results == [("unknown", 2500)]
    no_packets = Run()
    no_packets.play([], after_ms=4000)
    assert no_packets.results == [("unknown", 2500)]


def test_no_decision_in_time_is_unknown() -> None:
    run = Run(AmdConfig(total_ms=1000, greeting_ms=5000, max_words=20))
    run.play(talk(3000))
    assert run.results == [("unknown", 1000)]


@pytest.mark.parametrize("ending", ["beep", "silence"])
def test_beep_mode_waits_for_the_greetings_end(ending: str) -> None:
    run = Run(beep=True)
    end = tone(300) if ending == "beep" else []
    run.play(silence(300) + talk(3000) + end + silence(3000))
    assert run.results[0][0] == "machine"
    assert run.ready_at is not None
    # After 3.3 s of greeting: the batch after the beep's end (3.6 s), or 1.5 s into
    # the silence.
    assert run.ready_at == (3700 if ending == "beep" else 4800)


def test_the_configured_defaults_are_the_detectors() -> None:
    assert amd_config(Settings()) == AmdConfig()
