"""The native pump's media thread: it ticks and reads on its own, off the event loop, and
what it hands Python is exactly what happened to the stream still in the slot."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ivrcast.rtp import _pump
from ivrcast.rtp.clock import MediaClock
from ivrcast.rtp.packet import RtpPacket
from ivrcast.rtp.pump import NATIVE, PumpStream, StreamPump
from ivrcast.rtp.stream import open_rtp_socket

pytestmark = pytest.mark.skipif(not NATIVE, reason="the media pump was not built (no compiler)")

WAIT = 5.0  # seconds a condition may take on a loaded machine before the test fails
SILENCE = b"\xff" * 160


class Tap:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.audio: list[bytes] = []

    def sent(self, frame: bytes | memoryview) -> None:
        self.frames.append(bytes(frame))

    def received(self, ssrc: int, timestamp: int, payload: memoryview) -> None:
        self.audio.append(bytes(payload))


@pytest.fixture
def far_end() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(WAIT)
    yield sock
    sock.close()


def wait_until(condition: Callable[[], bool]) -> None:
    """Block the event loop (so it takes no events) until `condition` holds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the media thread did not get there"
        time.sleep(0.001)


def opened(pump: StreamPump, far_end: socket.socket, frames: tuple[bytes, ...] = ()) -> PumpStream:
    stream = pump.stream(open_rtp_socket("127.0.0.1"), monotonic=time.monotonic)
    stream.start(
        far_end.getsockname(), frames=frames, silence=SILENCE,
        payload_type=0, dtmf_payload_type=101, no_rtp_timeout=None,
    )  # fmt: skip
    return stream


async def test_the_thread_plays_a_voice_with_no_tick_from_the_event_loop(
    far_end: socket.socket,
) -> None:
    pump = StreamPump(interval=0.02)
    voice = (b"\x01" * 160, b"\x02" * 160, b"\x03" * 160)
    stream = opened(pump, far_end, voice)
    done = asyncio.Event()
    stream.on_audio_done = done.set
    tap = Tap()
    stream.tap = tap
    MediaClock().add(stream)  # on the clock, whose task is never started
    packets = [RtpPacket.parse(far_end.recv(2048)) for _ in range(5)]
    assert [p.payload for p in packets] == [*voice, SILENCE, SILENCE]
    assert [p.marker for p in packets] == [True, False, False, False, False]
    assert [(p.sequence_number - packets[0].sequence_number) & 0xFFFF for p in packets] == [
        0, 1, 2, 3, 4,
    ]  # fmt: skip
    assert [(p.timestamp - packets[0].timestamp) & 0xFFFFFFFF for p in packets] == [
        0, 160, 320, 480, 640,
    ]  # fmt: skip
    await asyncio.wait_for(done.wait(), WAIT)  # through the eventfd, on the loop
    assert tap.frames[:3] == list(voice)
    stream.close()
    pump.close()


async def test_events_of_a_closed_stream_never_reach_the_stream_in_its_slot_next(
    far_end: socket.socket,
) -> None:
    pump = StreamPump(interval=0.02)
    first = opened(pump, far_end)
    first_tap = Tap()
    first.tap = first_tap
    far_end.sendto(bytes(RtpPacket(0, 1, 160, 7, b"old call")), first.local_address)
    # The thread has recorded the audio; the loop, blocked here, has not taken it.
    readable, _, _ = select.select([pump.native.events_fd()], [], [], WAIT)
    assert readable
    first.close()
    second = opened(pump, far_end)
    assert second.slot == first.slot
    second_tap = Tap()
    second.tap = second_tap
    pump.take_events()
    assert first_tap.audio == second_tap.audio == []
    far_end.sendto(bytes(RtpPacket(0, 1, 160, 7, b"new call")), second.local_address)
    wait_until(lambda: second.stats.packets_received == 1)
    pump.take_events()
    assert second_tap.audio == [b"new call"]
    second.close()
    pump.close()


async def test_a_full_queue_drops_tap_audio_counts_it_and_says_so(
    far_end: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    pump = StreamPump(interval=0.02, queue_records=8)  # tap audio stops at 6 records
    stream = opened(pump, far_end)
    tap = Tap()
    stream.tap = tap
    for seq in range(10):
        far_end.sendto(bytes(RtpPacket(0, seq, 160 * seq, 7, bytes([seq]))), stream.local_address)
    wait_until(lambda: stream.stats.packets_received == 10)
    assert pump.native.dropped()[_pump.AUDIO] == 4
    with caplog.at_level(logging.WARNING, logger="ivrcast.rtp.pump"):
        pump.take_events()
    assert tap.audio == [bytes([seq]) for seq in range(6)]
    assert [r.__dict__["event"] for r in caplog.records] == ["rtp.pump_events_dropped"]
    assert "4 event(s) dropped, 4 of them tap audio" in caplog.text
    stream.close()
    pump.close()


async def test_a_threaded_pump_refuses_a_second_clock_and_every_call_once_closed() -> None:
    pump = StreamPump(interval=0.02)
    with pytest.raises(RuntimeError, match="media thread ticks it"):
        pump.native.tick()
    with pytest.raises(RuntimeError, match="runs already"):
        pump.native.run(0.02)
    pump.close()
    for call in (pump.native.take_events, pump.native.late_ticks, pump.native.events_fd):
        with pytest.raises(ValueError, match="closed"):
            call()


def threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def blocked_signals(thread: str) -> int:
    status = Path(f"/proc/self/task/{thread}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("SigBlk:"))[7:], 16)


async def test_the_thread_leaves_signals_to_python_and_is_joined_on_close() -> None:
    before = threads()
    pump = StreamPump(interval=0.02)
    (media_thread,) = threads() - before
    blocked = blocked_signals(media_thread)
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        assert blocked & (1 << (number - 1))
    pump.close()
    assert threads() == before  # joined: gone, not left running
