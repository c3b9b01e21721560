"""The SIP socket on loopback: a burst is drained in one loop turn, garbage is dropped."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from ivrcast.sip.message import Request, Response
from ivrcast.sip.transport import SipTransport

CAPTURE = (Path(__file__).parents[2] / "data" / "sip" / "baresip-200-ok.sip").read_bytes()


async def test_a_burst_is_read_in_one_loop_turn() -> None:
    """With thousands of calls each loop turn carries ~20 ms of media; a socket read one
    datagram per turn (asyncio's datagram transport) then loses answers to a full buffer."""
    loop = asyncio.get_running_loop()
    turn = 0

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
