"""Labelled test calls for answering-machine detection, generated (never committed).

espeak-ng speaks short "hello?"s (people) and long greetings (answering machines) in
several languages and voices; around them go silence, background noise, and for the
machines the beep that ends a greeting. Every call is made from a seed, so a set is the
same on every run. `calls(n, seed)` gives labelled 8 kHz samples; the regression test
(tests/interop/amd) plays a small set through the engine, `bench/amd_accuracy.py` a
large one.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

RATE = 8000
ESPEAK = shutil.which("espeak-ng")
ESPEAK_RATE = 22050
Label = Literal["human", "machine"]

# (espeak voice, what a person says answering, an answering machine's greeting)
LANGUAGES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "en-us",
        ("Hello?", "Hello, yes?", "Hi?", "Yeah, hello?"),
        (
            "Hi, you have reached the voicemail of John Miller. I am not available right "
            "now, please leave your name and number after the tone and I will call you back.",
            "Thank you for calling. Nobody is available to take your call at the moment. "
            "Please leave a message after the beep.",
            "The person you are calling is not available. Please record your message after "
            "the tone. When you have finished recording, you may hang up.",
        ),
    ),
    (
        "es-419",
        ("¿Bueno?", "¿Hola?", "¿Sí, diga?", "¿Aló?"),
        (
            "Hola, has llamado a María. En este momento no puedo atenderte, deja tu mensaje "
            "después del tono y te devolveré la llamada.",
            "El número que usted marcó no está disponible. Por favor deje su mensaje después "
            "de la señal.",
        ),
    ),
    (
        "id",
        ("Halo?", "Ya, halo?", "Halo, siapa ini?"),
        (
            "Nomor yang anda tuju sedang tidak dapat menerima panggilan. Silakan tinggalkan "
            "pesan setelah nada berikut.",
            "Halo, saya sedang tidak bisa menjawab telepon anda. Tinggalkan pesan dan nomor "
            "anda, nanti saya telepon kembali.",
        ),
    ),
    (
        "pt-br",
        ("Alô?", "Oi?", "Alô, quem fala?"),
        (
            "Olá, você ligou para o Carlos. No momento não posso atender, deixe seu recado "
            "após o sinal.",
        ),
    ),
    (
        "fr-fr",
        ("Allô?", "Oui, allô?"),
        (
            "Bonjour, vous êtes bien sur la messagerie de Pierre. Je ne suis pas disponible "
            "pour le moment, laissez-moi un message après le bip.",
        ),
    ),
    (
        "hi",
        ("हेलो?", "हाँ, हेलो?"),
        ("नमस्ते, आप जिस व्यक्ति को कॉल कर रहे हैं वह अभी उपलब्ध नहीं है। कृपया बीप के बाद अपना संदेश छोड़ें।",),
    ),
    (
        "vi",
        ("A lô?", "Alô, ai đấy?"),
        ("Xin chào, hiện tại tôi không thể nghe máy. Vui lòng để lại lời nhắn sau tiếng bíp.",),
    ),
)
VARIANTS = ("m1", "m3", "m5", "f1", "f2", "f4")
# Some people answer with a whole sentence: the hard case for any detector.
LONG_HELLOS = {
    "en-us": "Hello, this is Mike speaking.",
    "es-419": "Hola, habla Juan, ¿quién es?",
    "id": "Halo, dengan Budi di sini.",
}
LONG_HELLO_SHARE = 0.15


@dataclass(frozen=True)
class LabelledCall:
    label: Label
    name: str  # language, voice and seed: enough to make it again
    samples: npt.NDArray[np.int16]


@functools.lru_cache(maxsize=256)
def speak(text: str, voice: str, speed: int, pitch: int) -> npt.NDArray[np.float64]:
    """espeak-ng's voice for `text`, at 8 kHz, as floats."""
    if ESPEAK is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng)")
    wav = subprocess.run(
        [ESPEAK, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    # --stdout writes a streaming header (sizes unknown): the audio follows 44 bytes.
    audio = np.frombuffer(wav[44 : 44 + (len(wav) - 44) // 2 * 2], dtype="<i2").astype(float)
    return resample(audio, ESPEAK_RATE, RATE)


def resample(audio: npt.NDArray[np.float64], rate: int, to: int) -> npt.NDArray[np.float64]:
    """Low-pass below the new Nyquist (a windowed sinc), then interpolate."""
    cutoff = 0.9 * (to / 2) / rate
    taps = np.arange(-32, 33)
    kernel = np.sinc(2 * cutoff * taps) * np.hamming(len(taps))
    filtered = np.convolve(audio, kernel / kernel.sum(), mode="same")
    times = np.arange(0, len(audio) / rate, 1 / to)
    resampled: npt.NDArray[np.float64] = np.interp(times, np.arange(len(audio)) / rate, filtered)
    return resampled


def _seconds(rng: np.random.Generator, low: float, high: float) -> npt.NDArray[np.float64]:
    return np.zeros(int(rng.uniform(low, high) * RATE))


def beep(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    hz = rng.choice([440.0, 850.0, 1000.0, 1400.0])
    t = np.arange(int(rng.uniform(0.25, 0.6) * RATE)) / RATE
    ramp = np.minimum(1, np.minimum(t, t[::-1]) / 0.01)  # 10 ms edges, as real beeps
    tone: npt.NDArray[np.float64] = 9000 * ramp * np.sin(2 * np.pi * hz * t)
    return tone


def make_call(label: Label, seed: int) -> LabelledCall:
    rng = np.random.default_rng(seed)
    voice, hellos, greetings = LANGUAGES[int(rng.integers(len(LANGUAGES)))]
    variant = VARIANTS[int(rng.integers(len(VARIANTS)))]
    speed = int(rng.integers(140, 200))
    pitch = int(rng.integers(30, 70))
    who = f"{voice}+{variant}"
    if label == "human":
        text = hellos[int(rng.integers(len(hellos)))]
        if voice in LONG_HELLOS and rng.uniform() < LONG_HELLO_SHARE:
            text = LONG_HELLOS[voice]
        said = speak(text, who, speed, pitch)
        # A person picks up, says hello, and waits for an answer (then asks again).
        parts = [_seconds(rng, 0.2, 1.5), said, _seconds(rng, 2.0, 3.0), said]
        parts.append(_seconds(rng, 3.0, 4.0))
    else:
        text = greetings[int(rng.integers(len(greetings)))]
        parts = [_seconds(rng, 0.1, 1.0), speak(text, who, speed, pitch)]
        parts += [_seconds(rng, 0.2, 0.6), beep(rng), _seconds(rng, 3.0, 4.0)]
    audio = np.concatenate(parts)
    level = 10 ** (rng.uniform(-8, 0) / 20)  # callers are loud or quiet
    noise_dbfs = rng.uniform(-70, -50)  # a quiet room or a line's hiss
    noise = rng.normal(0, 32768 * 10 ** (noise_dbfs / 20), len(audio))
    samples = np.clip(audio * level + noise, -32767, 32767).astype(np.int16)
    return LabelledCall(label, f"{label}-{who}-s{speed}-p{pitch}-{seed}", samples)


def calls(count: int, seed: int = 0) -> list[LabelledCall]:
    """`count` calls, half people and half machines, alternating."""
    labels: tuple[Label, Label] = ("human", "machine")
    return [make_call(labels[i % 2], seed * 100_000 + i) for i in range(count)]


def write_wav(call: LabelledCall, path: Path) -> Path:
    """The call as an 8 kHz 16-bit mono WAV (what baresip's `aufile` plays)."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(call.samples.astype("<i2").tobytes())
    return path


PCAP_PAYLOAD_TYPE = 0  # PCMU: what the SIPp scenarios answer with


def write_pcap(call: LabelledCall, path: Path) -> Path:
    """The call as RTP/PCMU packets of 20 ms in a pcap file (Ethernet, IPv4, UDP), the
    form SIPp's `play_pcap_audio` plays: it sends each packet's RTP at its time."""
    import struct

    from ivrcast.rtp.g711 import FRAME_SAMPLES, encode_ulaw

    audio = encode_ulaw(call.samples.tolist())
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for index, start in enumerate(range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES)):
        rtp = (
            struct.pack("!BBHII", 0x80, PCAP_PAYLOAD_TYPE, index & 0xFFFF, start, 0x1234)
            + audio[start : start + FRAME_SAMPLES]
        )
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), index & 0xFFFF, 0, 64, 17, 0,
            bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]),
        ) + udp  # fmt: skip
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        at = index * 20_000  # microseconds
        out.append(struct.pack("<IIII", at // 1_000_000, at % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))
    return path
