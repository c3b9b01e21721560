"""Real audio reaches a real phone: baresip answers, records what it hears (`sndfile`),
and the recording's energy envelope must match the tone bursts we sent, for PCMU and
for PCMA."""

from __future__ import annotations

import array
import asyncio
import dataclasses
import functools
import json
import math
import socket
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import (
    BIND_ATTEMPTS,
    PROCESS_TIMEOUT,
    bound_or_exited,
    call_request,
    encoded,
    free_udp_port,
    tone_bursts,
)
from recording_checks import best_correlation, peak_frequency, read_stereo
from recording_checks import envelope as np_envelope

from ivrcast.sip import CallEvent, Engine, Trunk
from peers import require_executable
from waiting import wait_for

BARESIP = "/usr/bin/baresip"
FRAME = 160  # 20 ms at 8 kHz


@pytest.fixture(autouse=True)
def baresip_installed() -> None:
    require_executable(BARESIP, "baresip-core")


def envelope(samples: list[int]) -> list[float]:
    return [
        sum(abs(s) for s in samples[i : i + FRAME]) / FRAME
        for i in range(0, len(samples) - FRAME + 1, FRAME)
    ]


def correlation(a: list[float], b: list[float]) -> float:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    mean_a, mean_b = sum(a) / n, sum(b) / n
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    var_a = sum((x - mean_a) ** 2 for x in a)
    var_b = sum((y - mean_b) ** 2 for y in b)
    return cov / math.sqrt(var_a * var_b) if var_a and var_b else 0.0


def best_alignment(sent: list[float], heard: list[float], max_lag: int = 25) -> float:
    """Highest correlation over small shifts: the recording starts when baresip's
    jitter buffer first plays, not exactly with our first packet."""
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        a, b = (sent[lag:], heard) if lag >= 0 else (sent, heard[-lag:])
        best = max(best, correlation(a, b))
    return best


def read_wav(path: Path) -> list[int]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        data = w.readframes(w.getnframes())
    return [int.from_bytes(data[i : i + 2], "little", signed=True) for i in range(0, len(data), 2)]


Phone = Callable[..., Awaitable[tuple[Trunk, Path, Path]]]


@pytest.fixture
async def baresip(tmp_path: Path) -> AsyncIterator[Phone]:
    processes: list[asyncio.subprocess.Process] = []

    async def start(
        codec: str, control_port: int | None = None, voice: list[int] | None = None
    ) -> tuple[Trunk, Path, Path]:
        """`control_port`: also listen for commands there (`ctrl_tcp`, netstring JSON).
        `voice`: what the phone says (8 kHz samples, then silence), instead of silence."""
        home = tmp_path / f"baresip-{codec}"
        recordings = home / "rec"
        recordings.mkdir(parents=True)
        source = home / "silence.wav"
        with wave.open(str(source), "wb") as w:  # it hangs up when its source ends
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            spoken = array.array("h", voice or [])
            w.writeframes(spoken.tobytes() + b"\0\0" * (8000 * 60 - len(spoken)))
        failure = ""
        for _attempt in range(BIND_ATTEMPTS):
            port = free_udp_port()
            (home / "config").write_text(
                "\n".join(
                    [
                        f"sip_listen 127.0.0.1:{port}",
                        f"audio_source aufile,{source}",
                        "audio_player aufile,/dev/null",
                        "module_path /usr/lib/baresip/modules",
                        "module g711.so",
                        "module aufile.so",
                        "module sndfile.so",
                        "module account.so",
                        "module menu.so",
                        f"snd_path {recordings}",
                        *(
                            ["module ctrl_tcp.so", f"ctrl_tcp_listen 127.0.0.1:{control_port}"]
                            if control_port
                            else []
                        ),
                        "",
                    ]
                )
            )
            (home / "accounts").write_text(
                f"<sip:bob@127.0.0.1>;regint=0;answermode=auto;audio_codecs={codec}\n"
            )
            log = (home / "baresip.log").open("wb")
            process = await asyncio.create_subprocess_exec(
                "timeout", "-k", "5", str(PROCESS_TIMEOUT),
                BARESIP, "-f", str(home), "-n", "127.0.0.1",
                stdout=log, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            log.close()
            processes.append(process)
            # The port was free when chosen, but another process may take it before baresip
            # binds it; baresip then exits, and a new port is tried.
            await wait_for(
                functools.partial(bound_or_exited, port, process),
                "baresip to listen",
                limit=30,
            )
            if process.returncode is None:
                break
            failure = (home / "baresip.log").read_text(errors="replace")
        else:
            raise RuntimeError(f"baresip did not start {BIND_ATTEMPTS} times:\n{failure}")
        return Trunk(name="baresip", host="127.0.0.1", port=port), recordings, home / "baresip.log"

    yield start
    for process in processes:
        if process.returncode is None:
            process.terminate()
            await process.wait()


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_phone_hears_the_voice(engine: Engine, baresip: Phone, codec: str) -> None:
    trunk, recordings, log = await baresip(codec)
    samples = tone_bursts(3.0)
    request = call_request(trunk, encoded(samples), dest="bob")
    outcome = await engine.originate(request)
    assert outcome.status == "completed", log.read_text(errors="replace")
    assert outcome.codec == codec
    assert outcome.rtp_sent == 150
    # sndfile closes the "-dec" file (what the phone decoded) when the call ends.
    await wait_for(
        lambda: "terminated" in log.read_text(errors="replace"), "baresip to end the call", limit=10
    )
    heard_file = next(recordings.glob("*-dec.wav"))
    heard = envelope(read_wav(heard_file))
    sent = envelope(samples)
    assert len(heard) >= 0.9 * len(sent), f"recorded {len(heard)} of {len(sent)} frames"
    score = best_alignment(sent, heard)
    assert score > 0.9, f"envelope correlation {score:.2f}"


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def command(port: int, name: str) -> dict[str, object]:
    """One `ctrl_tcp` command (a netstring of JSON) and its reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = json.dumps({"command": name, "params": "", "token": name}).encode()
        writer.write(f"{len(body)}:".encode() + body + b",")
        await writer.drain()
        while True:
            size = int((await reader.readuntil(b":"))[:-1])
            reply: dict[str, object] = json.loads(await reader.readexactly(size))
            await reader.readexactly(1)  # the netstring's ","
            if reply.get("response"):
                return reply
    finally:
        writer.close()
        await writer.wait_closed()


async def test_phone_holds_and_resumes_the_call(engine: Engine, baresip: Phone) -> None:
    """baresip's own hold (a=sendonly) and resume (a=sendrecv) re-INVITEs: our answers
    take us off the media clock and back on, and the whole voice is still played."""
    control = free_tcp_port()
    trunk, _, log = await baresip("PCMU", control)
    request = call_request(trunk, encoded(tone_bursts(3.0)), dest="bob")
    events: list[CallEvent] = []
    call = asyncio.create_task(engine.originate(request, events.append))
    await wait_for(lambda: len(engine.media_clock) == 1, "the answer", limit=10)
    reply = await command(control, "hold")
    assert reply.get("ok") is True, reply
    await wait_for(lambda: len(engine.media_clock) == 0, "the hold re-INVITE", limit=10)
    reply = await command(control, "resume")
    assert reply.get("ok") is True, reply
    await wait_for(lambda: len(engine.media_clock) == 1, "the resume re-INVITE", limit=10)
    outcome = await call
    text = log.read_text(errors="replace")
    assert outcome.status == "completed", text
    assert outcome.sip_reason == "audio played", text
    assert outcome.rtp_sent == 150, text  # the voice resumed where it stopped


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_recording_holds_the_phones_voice_and_ours(
    engine: Engine, baresip: Phone, codec: str, tmp_path: Path
) -> None:
    """The phone says a 440 Hz tone while we play 1 kHz bursts: the recording's right
    channel is the phone's tone, its left our voice, as long as the call was answered."""
    phone_says = [int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8000 * 10)]
    trunk, _, log = await baresip(codec, voice=phone_says)
    ours = tone_bursts(3.0)
    path = tmp_path / "recorded.wav"
    request = dataclasses.replace(call_request(trunk, encoded(ours), dest="bob"), record_to=path)
    outcome = await engine.originate(request)
    text = log.read_text(errors="replace")
    assert outcome.status == "completed", text
    assert outcome.recorded, text
    assert outcome.answered_at is not None
    assert outcome.ended_at is not None

    left, right = read_stereo(path)
    answered = (outcome.ended_at - outcome.answered_at).total_seconds()
    assert abs(len(left) / 8000 - answered) < 0.1, (len(left), answered)
    assert abs(peak_frequency(right) - 440) < 5
    assert abs(peak_frequency(left) - 1000) < 5
    sent = np_envelope(np.array(ours, dtype=np.float64))
    assert best_correlation(sent, np_envelope(left), max_lag=2) > 0.95
