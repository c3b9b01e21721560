"""Whose RTP a stream accepts: the far end the SDP names, latched on its first packet.

Packets go over loopback and the test reads them with the stream's own reader, so the
order of arrival is the order of sending. 127.0.0.2 plays a host other than the far end
(all of 127/8 is loopback on Linux).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from ivrcast.rtp.dtmf import TelephoneEvent
from ivrcast.rtp.media import MediaPlane, MediaStream
from ivrcast.rtp.packet import RtpPacket
from ivrcast.rtp.stream import REJECT_LOG_INTERVAL, open_rtp_socket

AUDIO = bytes(RtpPacket(0, 1, 160, 7, b"\xff" * 160))


def key_press(key: int, timestamp: int) -> list[bytes]:
    """One RFC 4733 event: a start, then the three end packets (§2.5.1.4)."""
    start = RtpPacket(101, 10, timestamp, 99, bytes(TelephoneEvent(key, False, 10, 160)))
    end = RtpPacket(101, 11, timestamp, 99, bytes(TelephoneEvent(key, True, 10, 320)))
    return [bytes(start)] + [bytes(end)] * 3


class Peers:
    def __init__(self) -> None:
        self._socks: list[socket.socket] = []

    def __call__(self, host: str = "127.0.0.1") -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        self._socks.append(sock)
        return sock

    def close(self) -> None:
        for sock in self._socks:
            sock.close()


@pytest.fixture
def peer() -> Iterator[Peers]:
    peers = Peers()
    yield peers
    peers.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


Opened = tuple[MediaStream, list[str], Clock, MediaPlane]


@pytest.fixture
async def stream(media: MediaPlane) -> AsyncIterator[Opened]:
    clock = Clock()
    rtp = media.stream(open_rtp_socket("127.0.0.1"), label="c1", monotonic=clock)
    keys: list[str] = []
    rtp.on_key = keys.append
    yield rtp, keys, clock, media
    rtp.close()


def begin(stream: MediaStream, far_end: tuple[str, int]) -> None:
    stream.start(
        far_end, frames=(), silence=b"\xff" * 160,
        payload_type=0, dtmf_payload_type=101, no_rtp_timeout=None,
    )  # fmt: skip


def send(sender: socket.socket, opened: Opened, *packets: bytes) -> None:
    """Send `packets` to the stream and let it read them (loopback delivers at once)."""
    rtp, _, _, media = opened
    for packet in packets:
        sender.sendto(packet, rtp.local_address)
    while media.read_ready():
        pass


def test_first_packet_from_the_sdp_address_latches_and_others_are_dropped(
    stream: Opened, peer: Peers
) -> None:
    rtp, keys, _, _ = stream
    far_end, same_host, other_host = peer(), peer(), peer("127.0.0.2")
    begin(rtp, far_end.getsockname())
    send(other_host, stream, *key_press(7, 1000))  # before the far end spoke: still not it
    assert rtp.source is None
    send(far_end, stream, AUDIO)
    assert rtp.source == far_end.getsockname()
    send(same_host, stream, *key_press(8, 2000))  # the far end's host, another port
    send(other_host, stream, *key_press(9, 3000))
    send(far_end, stream, *key_press(1, 4000))
    assert keys == ["1"]
    assert rtp.rejected == 12
    assert rtp.stats.packets_received == 5  # the audio packet and the far end's key


def test_a_far_end_behind_nat_is_latched_on_another_port_of_its_address(
    stream: Opened, peer: Peers
) -> None:
    rtp, keys, _, _ = stream
    sdp_port, nat_port = peer(), peer()
    begin(rtp, sdp_port.getsockname())
    send(nat_port, stream, AUDIO, *key_press(3, 1000))
    send(sdp_port, stream, *key_press(4, 2000))  # the first packet won: this port is late
    assert rtp.source == nat_port.getsockname()
    assert keys == ["3"]
    assert rtp.rejected == 4


def test_a_reinvite_moves_the_expected_source(stream: Opened, peer: Peers) -> None:
    rtp, keys, _, _ = stream
    old, new = peer(), peer("127.0.0.2")
    begin(rtp, old.getsockname())
    send(old, stream, AUDIO)
    rtp.set_remote(new.getsockname())
    assert rtp.source is None
    send(new, stream, AUDIO, *key_press(2, 1000))
    send(old, stream, *key_press(5, 2000))
    assert rtp.source == new.getsockname()
    assert keys == ["2"]
    assert rtp.rejected == 4


def test_a_host_name_in_the_sdp_latches_the_first_source(stream: Opened, peer: Peers) -> None:
    rtp, keys, _, _ = stream
    first, second = peer("127.0.0.2"), peer()
    begin(rtp, ("media.invalid", 4000))  # never resolved: nothing is sent in this test
    send(first, stream, *key_press(6, 1000))
    send(second, stream, *key_press(7, 2000))
    assert keys == ["6"]
    assert rtp.rejected == 4


def test_rejections_are_logged_once_per_interval_with_a_count(
    stream: Opened,
    peer: Peers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rtp, _, clock, _ = stream
    far_end, forger = peer(), peer("127.0.0.2")
    begin(rtp, far_end.getsockname())
    send(far_end, stream, AUDIO)
    with caplog.at_level(logging.WARNING, logger="ivrcast.rtp"):
        for _ in range(10):
            send(forger, stream, *[AUDIO] * 100)
        clock.now += REJECT_LOG_INTERVAL
        send(forger, stream, *[AUDIO] * 50)
        rtp.close()
    records = [r for r in caplog.records if getattr(r, "event", "") == "rtp.rejected"]
    # The first packet, then the 999 held back with the first after the interval, then
    # the 49 held back since, when the stream closed.
    assert [getattr(r, "rejected", 0) for r in records] == [1, 1000, 49]
    assert rtp.rejected == 1050


async def test_ipv6_sources_are_latched_as_the_kernel_reports_them(media: MediaPlane) -> None:
    """An IPv6 socket reports 4-tuples (host, port, flow info, scope): the latch keeps
    the tuple as received, so later packets match with one comparison."""
    rtp = media.stream(open_rtp_socket("::1"), monotonic=lambda: 0.0)
    keys: list[str] = []
    rtp.on_key = keys.append
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as far_end,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as other_port,
    ):
        far_end.bind(("::1", 0))
        other_port.bind(("::1", 0))
        begin(rtp, far_end.getsockname()[:2])
        for sender, packets in ((far_end, [AUDIO]), (other_port, key_press(4, 1000))):
            for packet in packets:
                sender.sendto(packet, rtp.local_address)
            while media.read_ready():
                pass
        assert rtp.source == far_end.getsockname()
    rtp.close()
    assert keys == []
    assert rtp.rejected == 4
    assert rtp.stats.packets_received == 1
