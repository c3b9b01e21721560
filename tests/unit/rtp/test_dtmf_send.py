"""Sending a key press (RFC 4733 §2.5): the packets one press makes, sent by `KeyPress`
in place of a stream's frames and read back over loopback by the engine's own receiver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from ivrcast.rtp.dtmf import DtmfReceiver, TelephoneEvent
from ivrcast.rtp.dtmf_send import END_REPEATS, HELD_PACKETS, KeyPress, key_press_payloads
from ivrcast.rtp.g711 import FRAME_SAMPLES, SILENCE_FRAMES
from ivrcast.rtp.media import MediaPlane, MediaStream
from ivrcast.rtp.packet import RtpPacket
from ivrcast.rtp.stream import open_rtp_socket


def test_one_press_is_five_growing_packets_then_three_end_packets() -> None:
    packets = key_press_payloads("#")
    events = [TelephoneEvent.parse(payload) for _, payload in packets]
    assert len(packets) == HELD_PACKETS + END_REPEATS
    assert [marker for marker, _ in packets] == [True] + [False] * 7  # §2.5.1.3
    assert {e.key for e in events} == {"#"}
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800, 800]
    assert [e.end for e in events] == [False] * 5 + [True] * 3  # §2.5.1.4


@pytest.fixture
async def stream_and_peer(media: MediaPlane) -> AsyncIterator[tuple[MediaStream, socket.socket]]:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2.0)
    stream = media.stream(open_rtp_socket("127.0.0.1"), monotonic=asyncio.get_running_loop().time)
    stream.start(
        peer.getsockname(),
        frames=[SILENCE_FRAMES["PCMU"]] * 10,
        silence=SILENCE_FRAMES["PCMU"],
        payload_type=0,
        dtmf_payload_type=96,
        no_rtp_timeout=None,
    )
    yield stream, peer
    stream.close()
    peer.close()


async def test_key_press_takes_the_streams_place_and_audio_resumes_after_it(
    stream_and_peer: tuple[MediaStream, socket.socket],
) -> None:
    stream, peer = stream_and_peer
    stream.tick()  # one audio frame first
    done: list[bool] = []
    press = KeyPress(stream, "1", on_done=lambda: done.append(True))
    for _ in range(HELD_PACKETS + END_REPEATS):
        assert not done
        press.tick()
    assert done == [True]
    stream.tick()  # audio again
    packets = [RtpPacket.parse(peer.recv(2048)) for _ in range(10)]
    audio_before, *events, audio_after = packets
    assert audio_before.payload_type == audio_after.payload_type == 0
    assert {p.payload_type for p in events} == {96}
    assert {p.timestamp for p in events} == {audio_before.timestamp + FRAME_SAMPLES}
    # One SSRC and one sequence for the whole stream; audio resumes after the event's span.
    assert {p.ssrc for p in packets} == {stream.ssrc}
    seqs = [p.sequence_number for p in packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(10)]
    assert audio_after.timestamp == audio_before.timestamp + FRAME_SAMPLES * 9
    receiver = DtmfReceiver()
    keys = [receiver.on_packet(p.timestamp, p.payload) for p in events]
    assert [k for k in keys if k is not None] == ["1"]  # reported once
