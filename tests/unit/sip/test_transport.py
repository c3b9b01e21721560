"""The SIP socket on loopback: a burst is drained in one loop turn, garbage is dropped
and logged a bounded number of times."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from ivrcast.sip.message import Request, Response
from ivrcast.sip.transport import MALFORMED_LOG_INTERVAL, SipTransport

CAPTURE = (Path(__file__).parents[2] / "data" / "sip" / "baresip-200-ok.sip").read_bytes()


async def test_a_burst_is_read_in_one_loop_turn() -> None:
    """With thousands of calls each loop turn carries ~20 ms of media; a socket read one
    datagram per turn (asyncio's datagram transport) then loses answers to a full buffer."""
    loop = asyncio.get_running_loop()
    turn = 0

    handle: asyncio.Handle

    def count_turns() -> None:
        nonlocal turn, handle
        turn += 1
        handle = loop.call_soon(count_turns)  # runs once per loop turn

    handle = loop.call_soon(count_turns)
    turns_seen: list[int] = []
    received: list[Request | Response] = []

    def on_message(message: Request | Response, _: tuple[str, int]) -> None:
        received.append(message)
        turns_seen.append(turn)

    transport = await SipTransport.open("127.0.0.1", 0, on_message)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.sendto(b"not SIP at all\r\n\r\n", transport.local_address)
        for _ in range(50):
            peer.sendto(CAPTURE, transport.local_address)
    for _ in range(500):
        if len(received) == 50:
            break
        await asyncio.sleep(0.01)
    handle.cancel()
    transport.close()
    assert len(received) == 50
    assert all(isinstance(m, Response) and m.status == 200 for m in received)
    assert len(set(turns_seen)) == 1
    assert transport.dropped == 1


class SteppedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_garbage_is_logged_a_bounded_number_of_times(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1000 garbage datagrams from two hosts: one line per host per interval, each with
    the count held back, and the rest summarised at close."""
    clock = SteppedClock()
    transport = await SipTransport.open("127.0.0.1", 0, lambda *_: None, monotonic=clock)
    target = transport.local_address
    with (
        caplog.at_level(logging.WARNING, logger="ivrcast.sip.transport"),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other,
    ):
        other.bind(("127.0.0.2", 0))
        for sent in range(1, 1001):
            (one if sent % 2 else other).sendto(b"GARBAGE\r\n\r\n", target)
            if sent == 600:
                await wait_dropped(transport, 600)
                clock.now += MALFORMED_LOG_INTERVAL
        await wait_dropped(transport, 1000)
        transport.close()
    records = [r for r in caplog.records if getattr(r, "event", "") == "sip.malformed"]
    assert transport.dropped == 1000
    # Per host: the first, the first after the interval (299 held back), then 199 at close.
    assert sorted(getattr(r, "suppressed", -1) for r in records) == [0, 0, 199, 199, 299, 299]
    assert len(records) == 6  # not 1000


async def wait_dropped(transport: SipTransport, count: int) -> None:
    for _ in range(1000):
        if transport.dropped >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"only {transport.dropped} of {count} datagrams were read")
