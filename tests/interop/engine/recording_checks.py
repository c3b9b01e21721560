"""Reading a call's recording back: its two channels, their main frequency (FFT) and
their envelopes."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE = 8000
FRAME = 160

Samples = npt.NDArray[np.float64]


def read_stereo(path: Path) -> tuple[Samples, Samples]:
    """(left, right) of an 8 kHz 16-bit stereo WAV."""
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return data[0::2], data[1::2]


def peak_frequency(samples: Samples) -> float:
    """The strongest frequency, in Hz (a Hann window keeps leakage from the bursts low)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[int(np.argmax(spectrum))])


def envelope(samples: Samples) -> Samples:
    frames = len(samples) // FRAME
    means: Samples = np.abs(samples[: frames * FRAME]).reshape(frames, FRAME).mean(axis=1)
    return means


def best_correlation(a: Samples, b: Samples, max_lag: int = 10) -> float:
    """The highest correlation of two envelopes over shifts of up to `max_lag` frames."""
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        n = min(len(x), len(y))
        if n > 10 and x[:n].std() and y[:n].std():
            best = max(best, float(np.corrcoef(x[:n], y[:n])[0, 1]))
    return best
