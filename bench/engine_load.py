"""The loads `bench/engine.py` measures, each run as a process of its own so that its
CPU and memory are its alone (and so that `IVRCAST_MEDIA` picks the media plane):

    python bench/engine_load.py floor ECHO_STREAMS ECHO_PORT SINK_STREAMS SINK_PORT
    python bench/engine_load.py engine ECHO_CALLS ECHO_SIP_PORT SINK_CALLS SINK_SIP_PORT RATE
        [STALL_MS]
    python bench/engine_load.py media CALLS VARIANT ECHO_SIP_PORT RATE RECORDINGS_DIR

Each writes one JSON object per line to stdout: the first, `{"rss_mb": …}`, before it
opens any socket; then `{"up": …}` once every stream sends (the measured window may
start). `floor` then runs until killed; `engine` waits for a line on stdin (the window
is over), ends its calls and reports them; `media` reports once its calls are done.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import select
import socket
import struct
import sys
import time
from dataclasses import replace
from pathlib import Path

from engine_peers import memory_mb, tone
from ivrcast.rtp import EncodedAudio
from ivrcast.rtp.amd import AmdConfig
from ivrcast.rtp.g711 import encode_alaw, encode_ulaw
from ivrcast.sip import CallOutcome, CallRequest, Engine, Trunk
from ivrcast.sip.outcome import CallEvent

ANSWER_LIMIT = 60.0  # seconds after the last INVITE for every call to be answered
STOP_GRACE = 15.0  # for thousands of BYEs answered on a busy machine
MEDIA_HOLD = 8.0  # `media`: seconds every call of a step plays together
STALL_PERIOD = 0.2  # `engine` with STALL_MS: seconds between two stalls of its loop


def report(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def current_rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def baseline_rss_mb() -> float:
    """This process's RSS now, after resetting its peak (VmHWM) to it: the peak read
    later is then that of what followed, not of start-up work (the voice's encoding)."""
    Path("/proc/self/clear_refs").write_text("5")
    return current_rss_mb()


# -- the bare Python loop ------------------------------------------------------------


def run_python_floor(echo_streams: int, echo_port: int, sink_streams: int, sink_port: int) -> None:
    """The streams with no SIP and no per-call objects, one epoll and one loop: the least
    a Python process can spend per packet. Reads (the echoes) are drained as they come."""
    report(rss_mb=baseline_rss_mb())
    header = struct.Struct("!BBHII")
    socks = []
    for i in range(echo_streams + sink_streams):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        socks.append((sock, ("127.0.0.1", echo_port if i < echo_streams else sink_port), i))
    readers = {sock.fileno(): sock for sock, _, _ in socks}
    poller = select.epoll()
    for fd in readers:
        poller.register(fd, select.EPOLLIN)
    buffer, payload = bytearray(12), memoryview(bytes(160))
    next_tick = time.monotonic()
    tick = 0
    report(up=len(socks))
    while True:
        if time.monotonic() >= next_tick:
            for sock, address, ssrc in socks:
                header.pack_into(buffer, 0, 0x80, 8, tick & 0xFFFF, tick * 160, ssrc)
                try:  # noqa: SIM105 (a context manager per packet would raise the floor)
                    sock.sendmsg((buffer, payload), (), 0, address)
                except OSError:
                    pass
            tick += 1
            next_tick += 0.020
            continue
        for fd, _ in poller.poll(max(next_tick - time.monotonic(), 0)):
            try:  # noqa: SIM105
                readers[fd].recv(2048)
            except OSError:
                pass


# -- the engine ------------------------------------------------------------------------


def request(name: str, trunk: Trunk, audio: EncodedAudio) -> CallRequest:
    return CallRequest(call_uuid=name, trunk=trunk, dest="100", caller_id="200",
                       audio=audio, wait_time=30, conn_time=600)  # fmt: skip


def failures(outcomes: list[CallOutcome]) -> int:
    """Calls that did not end as the bench ends them: answered, then our BYE."""
    return sum(1 for o in outcomes if o.status != "completed" or o.hangup_by != "us")


class AnswerCounter:
    """Counts the calls answered and not yet hung up, from the engine's call events."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.answered = 0
        self.ended = 0
        self.most_at_once = 0
        self.all_answered = asyncio.Event()

    def __call__(self, event: CallEvent) -> None:
        if event.kind == "answered":
            self.answered += 1
            self.most_at_once = max(self.most_at_once, self.answered - self.ended)
            if self.answered >= self.expected:
                self.all_answered.set()
        elif event.kind == "hangup":
            self.ended += 1


async def launch(
    engine: Engine, calls: list[CallRequest], rate: float, counter: AnswerCounter
) -> list[asyncio.Task[CallOutcome]]:
    tasks = []
    start = time.monotonic()
    for i, call in enumerate(calls):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(engine.originate(call, counter)))
    return tasks


async def stall_loop(stall_ms: float) -> None:
    """Block the event loop for `stall_ms` every `STALL_PERIOD`, on purpose: what a long
    iteration does (a garbage-collector pass, a burst of SIP, a slow store call)."""
    while True:
        await asyncio.sleep(STALL_PERIOD)
        time.sleep(stall_ms / 1000)  # noqa: ASYNC251 -- blocking the loop is the point


async def engine_step(
    echo_calls: int,
    echo_sip_port: int,
    sink_calls: int,
    sink_sip_port: int,
    rate: float,
    stall_ms: float,
) -> None:
    """Hold the calls (to the echoing UAS and to the sink's UAS) until told to stop,
    the loop stalled `stall_ms` every `STALL_PERIOD` while they are all up."""
    n = echo_calls + sink_calls
    samples = tone(n / rate + ANSWER_LIMIT + 60)  # outlasts the step, for windows up to ~50 s
    audio = EncodedAudio(encode_ulaw(samples), encode_alaw(samples))
    engine = Engine(no_rtp_timeout=None, stop_grace=STOP_GRACE)
    await engine.start()
    report(rss_mb=baseline_rss_mb())
    echo = Trunk(name="echo", host="127.0.0.1", port=echo_sip_port)
    sink = Trunk(name="sink", host="127.0.0.1", port=sink_sip_port)
    calls = [request(f"echo-{i}", echo, audio) for i in range(echo_calls)]
    calls += [request(f"sink-{i}", sink, audio) for i in range(sink_calls)]
    counter = AnswerCounter(n)
    started = time.monotonic()
    tasks = await launch(engine, calls, rate, counter)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(counter.all_answered.wait(), ANSWER_LIMIT)
    late_before = engine.media_clock.late_ticks
    stalls = asyncio.create_task(stall_loop(stall_ms), name="stalls") if stall_ms > 0 else None
    report(up=counter.answered, seconds_to_all_up=round(time.monotonic() - started, 1))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    late_ticks = engine.media_clock.late_ticks - late_before
    if stalls is not None:
        stalls.cancel()
    await engine.stop()
    outcomes = await asyncio.gather(*tasks)
    report(
        failed=failures(outcomes),
        statuses=dict(collections.Counter(o.status for o in outcomes)),
        late_ticks=late_ticks,
        rtp_lost=sum(o.rtp_lost for o in outcomes),
        stall_ms=stall_ms,
    )


# -- recording and answering-machine detection ------------------------------------------


async def media_step(
    n: int, variant: str, echo_sip_port: int, rate: float, recordings: Path
) -> None:
    """N calls at once against the echoing UAS, launched at `rate`, each playing until
    every call has played `MEDIA_HOLD` s together; `record+amd`: each also recorded and
    run through answering-machine detection (the echo returns our silence while
    detection listens, so it listens its whole `initial_silence_ms`, says "unknown", and
    the voice then plays: those calls last that much longer)."""
    samples = tone(n / rate + MEDIA_HOLD)
    audio = EncodedAudio(encode_ulaw(samples), encode_alaw(samples))
    engine = Engine(no_rtp_timeout=None, stop_grace=STOP_GRACE)
    await engine.start()
    trunk = Trunk(name="echo", host="127.0.0.1", port=echo_sip_port)
    calls = [request(f"{variant}-{i}", trunk, audio) for i in range(n)]
    if variant == "record+amd":
        calls = [replace(call, record_to=recordings / f"{i}.wav", amd=AmdConfig())
                 for i, call in enumerate(calls)]  # fmt: skip
    rss_before = baseline_rss_mb()
    cpu_before = time.process_time()
    counter = AnswerCounter(n)
    outcomes = await asyncio.gather(*await launch(engine, calls, rate, counter))
    cpu = time.process_time() - cpu_before
    await engine.stop()
    report(
        variant=variant,
        calls=n,
        failed=sum(1 for o in outcomes if o.status != "completed"),
        most_at_once=counter.most_at_once,
        recorded=sum(o.recorded for o in outcomes),
        answered_by=dict(collections.Counter(str(o.answered_by) for o in outcomes)),
        cpu_ms_per_call=round(1000 * cpu / n, 2),
        rss_growth_kb_per_call=round(1024 * (memory_mb(os.getpid(), "VmHWM") - rss_before) / n, 1),
        late_ticks=engine.media_clock.late_ticks,
    )


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.ERROR)
    kind, args = argv[0], argv[1:]
    if kind == "floor":
        run_python_floor(*(int(a) for a in args))
    elif kind == "engine":
        echo_calls, echo_port, sink_calls, sink_port = (int(a) for a in args[:4])
        stall_ms = float(args[5]) if len(args) > 5 else 0.0
        asyncio.run(
            engine_step(echo_calls, echo_port, sink_calls, sink_port, float(args[4]), stall_ms)
        )
    elif kind == "media":
        n, variant, port, rate, folder = args
        asyncio.run(media_step(int(n), variant, int(port), float(rate), Path(folder)))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
