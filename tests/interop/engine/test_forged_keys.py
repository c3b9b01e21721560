"""Keys only from the far end: forged RFC 4733 events and out-of-dialog INFO during a
real call with SIPp, sent from sockets other than the far end's."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from engine_helpers import (
    SippRun,
    call_request,
    free_udp_port,
    silence,
)

from ivrcast.rtp.dtmf import TelephoneEvent
from ivrcast.rtp.packet import RtpPacket
from ivrcast.sip import CallEvent, Engine
from waiting import wait_for

Sipp = Callable[..., Awaitable[SippRun]]


def key_press(key: int, timestamp: int) -> list[bytes]:
    start = RtpPacket(101, 10, timestamp, 99, bytes(TelephoneEvent(key, False, 10, 160)))
    end = RtpPacket(101, 11, timestamp, 99, bytes(TelephoneEvent(key, True, 10, 320)))
    return [bytes(start)] + [bytes(end)] * 3


@pytest.fixture
def udp() -> Iterator[Callable[[str], socket.socket]]:
    socks: list[socket.socket] = []

    def make(host: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        socks.append(sock)
        return sock

    yield make
    for sock in socks:
        sock.close()


@pytest.fixture
async def pinned_engine() -> AsyncIterator[tuple[Engine, int]]:
    """An engine whose RTP port is known: its port range holds one even port."""
    port = free_udp_port(even=True)
    engine = Engine(no_rtp_timeout=None, rtp_port_range=(port, port + 1))
    await engine.start()
    yield engine, port
    await engine.stop()


async def test_forged_rfc4733_events_are_dropped_and_counted(
    pinned_engine: tuple[Engine, int], sipp: Sipp, udp: Callable[[str], socket.socket]
) -> None:
    engine, rtp_port = pinned_engine
    far_end = udp("127.0.0.1")  # the media address SIPp's SDP names
    other_port = udp("127.0.0.1")  # the far end's host, another port
    other_host = udp("127.0.0.2")
    run = await sipp(
        "uas_answer_wait_bye.xml",
        substitute={"m=audio [media_port]": f"m=audio {far_end.getsockname()[1]}"},
    )
    events: list[CallEvent] = []
    request = call_request(run.trunk, silence(1.0), collect_keys=True, key_wait=5)
    task = asyncio.create_task(engine.originate(request, events.append))
    await wait_for(lambda: any(e.kind == "answered" for e in events), "answer", limit=5)
    target = ("127.0.0.1", rtp_port)
    # Loopback queues each datagram before sendto returns: the engine reads them in
    # this order.
    for packet in key_press(7, 1000):
        other_host.sendto(packet, target)  # before the far end has sent anything
    far_end.sendto(bytes(RtpPacket(0, 1, 160, 5, b"\xff" * 160)), target)
    for packet in key_press(8, 2000):
        other_port.sendto(packet, target)  # after the far end's first packet
    for packet in key_press(1, 3000):
        far_end.sendto(packet, target)
    outcome = await task
    assert await run.finish() == 0, run.logs()
    assert outcome.status == "completed", run.logs()
    assert outcome.keys == "1"
    assert outcome.rtp_rejected == 8
    assert outcome.rtp_received == 5
    assert [e.key for e in events if e.kind == "key"] == ["1"]


async def test_info_outside_the_dialog_gets_481_and_no_key(engine: Engine, sipp: Sipp) -> None:
    run = await sipp("uas_info_forged.xml")
    request = call_request(run.trunk, silence(1.0), collect_keys=True)
    outcome = await engine.originate(request)
    assert await run.finish() == 0, run.logs()  # 481 to both forged INFOs, 200 to the real one
    assert outcome.status == "completed", run.logs()
    assert outcome.keys == "5"
