"""Stress the native media pump with hostile input:
`python pump_stress.py PUMP.so SEED threaded|stepped`.

`test_pump_sanitized.py` runs this against a build of `_pump.c` with AddressSanitizer and
UBSan; any overflow, use after free or undefined behaviour aborts the process. *threaded*
runs the pump's media thread on a 2 ms clock, so it ticks and drains the streams while
Python opens, closes, re-points and taps them and the loop takes its events; *stepped*
drives the pump from Python alone, as the unit tests do. Over a few
hundred rounds it opens and closes streams while datagrams are on the way to them, sends
random and malformed datagrams (truncated headers, CSRC counts and extension lengths that
point past the end, huge datagrams, telephone-events too short to parse) from the far end
and from forgers, turns taps on and off, re-points remotes (IPv4, IPv6, host names), and
misuses the raw API (unknown slots, wrong types, calls on a closed pump).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import random
import socket
import struct
import sys
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ivrcast.rtp.pump import StreamPump

ROUNDS = 300
STREAMS = 24


def load_pump(path: str) -> None:
    """Make `ivrcast.rtp._pump` the build at `path` before `ivrcast.rtp.pump` imports it."""
    spec = importlib.util.spec_from_file_location("ivrcast.rtp._pump", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ivrcast.rtp._pump"] = module
    spec.loader.exec_module(module)


class Tap:
    def __init__(self) -> None:
        self.sent = 0
        self.received = 0

    def sent_frame(self, frame: bytes | memoryview) -> None:
        self.sent += len(frame)

    def received_payload(self, ssrc: int, timestamp: int, payload: memoryview) -> None:
        self.received += len(bytes(payload))


class CountingTap:
    def __init__(self, tap: Tap) -> None:
        self._tap = tap

    def sent(self, frame: bytes | memoryview) -> None:
        self._tap.sent_frame(frame)

    def received(self, ssrc: int, timestamp: int, payload: memoryview) -> None:
        self._tap.received_payload(ssrc, timestamp, payload)


def datagram(rng: random.Random) -> bytes:
    """Valid, odd and broken RTP, weighted toward what parses halfway."""
    shape = rng.randrange(8)
    if shape == 0:
        return rng.randbytes(rng.randrange(0, 12))  # shorter than a header
    if shape == 1:
        return rng.randbytes(rng.randrange(12, 3000))  # noise, some past the buffer
    first = 0x80 | rng.choice([0, 0x10, 0x0F, 0x1F, rng.randrange(64)])
    second = rng.choice([0, 8, 101, 101 | 0x80, rng.randrange(256)])
    header = struct.pack(
        "!BBHII", first, second, rng.randrange(1 << 16), rng.randrange(1 << 32), rng.choice([1, 2])
    )
    if shape == 2:  # extension header whose length points far past the end
        return header + struct.pack("!HH", 0xBEDE, rng.randrange(1 << 16))
    if shape == 3:  # telephone-event, of any length 0-5
        return header[:1] + bytes([101]) + header[2:] + rng.randbytes(rng.randrange(6))
    if shape == 4:
        return header + rng.randbytes(4 * (first & 0x0F)) + rng.randbytes(rng.randrange(200))
    return header + rng.randbytes(rng.choice([0, 1, 160, rng.randrange(2100)]))


# The threaded stress's clock: ten times the real one, for more ticks racing Python.
STRESS_INTERVAL = 0.002


async def run(seed: int, threaded: bool) -> dict[str, int]:
    from ivrcast.rtp.pump import PumpStream, StreamPump
    from ivrcast.rtp.stream import open_rtp_socket

    rng = random.Random(seed)
    pump = StreamPump(interval=STRESS_INTERVAL if threaded else 0.02, threaded=threaded)
    tap = Tap()
    far_end = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    far_end.bind(("127.0.0.1", 0))
    far_end.setblocking(False)
    forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    forger.bind(("127.0.0.2", 0))
    forger.setblocking(False)
    audio = bytes(range(256)) * 10
    frames: tuple[bytes | memoryview, ...] = (
        *(memoryview(audio)[i : i + 160] for i in range(0, 1600, 160)),
        b"\xff" * 7,
    )
    streams: list[PumpStream] = []
    keys: list[str] = []
    sent = 0

    def open_one() -> None:
        stream = pump.stream(open_rtp_socket("127.0.0.1"), label="s", monotonic=rng.random)
        stream.on_key = keys.append
        stream.on_audio_done = stream.release_voice
        remote = rng.choice([far_end.getsockname(), ("::1", 9), ("media.invalid", 4000)])
        stream.start(
            remote,
            frames=frames,
            silence=b"\xff" * 160,
            payload_type=rng.choice([0, 8]),
            dtmf_payload_type=rng.choice([None, 101]),
            no_rtp_timeout=rng.choice([None, 0.0, 5.0]),
            hold_voice=rng.random() < 0.3,
        )
        pump.native.set_ticking(stream.slot, rng.random() < 0.8)
        streams.append(stream)

    for _ in range(STREAMS):
        open_one()
    for _ in range(ROUNDS):
        for _ in range(rng.randrange(40)):
            if not streams:
                break
            target = rng.choice(streams).local_address
            sender = far_end if rng.random() < 0.7 else forger
            try:
                sender.sendto(datagram(rng), target)
                sent += 1
            except OSError:
                pass  # a full buffer, or the target closed
        action = rng.randrange(10)
        if action == 0 and streams:
            streams.pop(rng.randrange(len(streams))).close()  # packets still on the way
        elif action == 1:
            open_one()
        elif action == 2 and streams:
            stream = rng.choice(streams)
            stream.tap = CountingTap(tap) if stream.tap is None else None
        elif action == 3 and streams:
            rng.choice(streams).set_remote(rng.choice([far_end.getsockname(), ("::1", 9)]))
        elif action == 4 and streams:
            stream = rng.choice(streams)
            stream.send_event(rng.randbytes(rng.randrange(8)), timestamp=1, marker=True)
            stream.skip(rng.randrange(1 << 32))
            stream.release_voice()
        pump.tick()
        pump.read_ready()
        pump.check_rtp_timeout(rng.random() * 10)
        for stream in streams:
            assert stream.stats.packets_lost >= 0
            _ = stream.source
        misuse(pump, rng)
        while True:
            try:
                far_end.recv(4096)
            except OSError:
                break
        await asyncio.sleep(0)
    late_ticks = pump.late_ticks
    dropped = sum(pump.native.dropped())
    for stream in streams:
        stream.close()
    pump.close()
    closed_pump_misuse(pump)
    far_end.close()
    forger.close()
    return {
        "sent": sent,
        "keys": len(keys),
        "tap_bytes": tap.sent + tap.received,
        "late_ticks": late_ticks,
        "dropped": dropped,
    }


def misuse(pump: StreamPump, rng: random.Random) -> None:
    """Calls a caller must never make: each must raise, never corrupt."""
    native = pump.native
    bad_slot = rng.choice([-1, 1 << 20, native.size() + 1000])
    calls: list[Callable[[], object]] = [
        partial(native.counters, bad_slot),
        partial(native.remove, bad_slot),
        partial(native.start, bad_slot, (), b"", 0, -1, False),
        partial(native.start, 0, cast(Any, ("not bytes",)), b"", 0, -1, False),
        partial(native.start, 0, (), b"", 300, -1, False),
        partial(native.set_remote, 0, b"\x01\x02\x03", 5),
        partial(native.set_remote, 0, b"\x7f\x00\x00\x01", 70000),
        partial(native.add, -1, None, 0, 0, 0),
        partial(native.run, 0.0),
        partial(native.run, 0.02, 1),
    ]
    if pump.threaded:
        calls += [partial(native.run, 0.02), native.tick]  # one clock only
    for call in calls:
        with contextlib.suppress(KeyError, TypeError, ValueError, OSError, RuntimeError):
            call()


def closed_pump_misuse(pump: StreamPump) -> None:
    native = pump.native
    calls: list[Callable[[], object]] = [
        native.tick,
        partial(native.drain, 1),
        native.fileno,
        partial(native.counters, 0),
        native.take_events,
        native.events_fd,
        native.late_ticks,
        native.dropped,
        partial(native.run, 0.02),
    ]
    for call in calls:
        try:
            call()
        except ValueError:
            continue
        raise AssertionError("a closed pump must refuse every call")


class Failures(logging.Handler):
    """Counts error records: a callback that raised inside the pump's delivery."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def main() -> None:
    failures = Failures()
    logging.getLogger("ivrcast").addHandler(failures)
    logging.getLogger("ivrcast").setLevel(logging.ERROR)
    load_pump(sys.argv[1])
    result = asyncio.run(run(int(sys.argv[2]), threaded=sys.argv[3] == "threaded"))
    print(result)
    if failures.count:
        raise SystemExit(f"{failures.count} error record(s) logged")


if __name__ == "__main__":
    main()
