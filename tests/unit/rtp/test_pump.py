"""The native pump against its reference: the same datagrams, sent over loopback to a
pump stream and to a pure-Python stream, must give the same keys, the same audio to the
tap, the same statistics, the same latched source and the same rejections, whether the
pump's media thread reads them or Python drives it step by step."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import pytest
from pump_stress import datagram

from ivrcast.rtp.errors import RtpError
from ivrcast.rtp.media import MediaPlane, MediaStream, choose_backend, open_media_plane
from ivrcast.rtp.packet import RtpPacket
from ivrcast.rtp.pump import NATIVE
from ivrcast.rtp.stream import open_rtp_socket

pytestmark = pytest.mark.skipif(not NATIVE, reason="the media pump was not built (no compiler)")


class Seen:
    """What a stream reported: keys and the far end's audio through its tap."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.audio: list[tuple[int, int, bytes]] = []
        self.frames: list[bytes] = []

    def sent(self, frame: bytes | memoryview) -> None:
        self.frames.append(bytes(frame))

    def received(self, ssrc: int, timestamp: int, payload: memoryview) -> None:
        self.audio.append((ssrc, timestamp, bytes(payload)))


@pytest.fixture
def peers() -> Iterator[tuple[socket.socket, socket.socket]]:
    far_end = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    far_end.bind(("127.0.0.1", 0))
    forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    forger.bind(("127.0.0.2", 0))
    yield far_end, forger
    far_end.close()
    forger.close()


def started(plane: MediaPlane, far_end: tuple[str, int]) -> tuple[MediaStream, Seen]:
    stream = plane.stream(open_rtp_socket("127.0.0.1"), label="c", monotonic=lambda: 0.0)
    seen = Seen()
    stream.on_key = seen.keys.append
    stream.tap = seen
    stream.start(
        far_end, frames=(), silence=b"\xff" * 160,
        payload_type=8, dtmf_payload_type=101, no_rtp_timeout=None,
    )  # fmt: skip
    return stream, seen


@pytest.mark.parametrize("threaded", [True, False], ids=["thread", "stepped"])
@pytest.mark.parametrize("seed", range(4))
async def test_the_pump_reads_as_the_python_streams_do(
    seed: int, threaded: bool, peers: tuple[socket.socket, socket.socket]
) -> None:
    far_end, forger = peers
    planes = [
        open_media_plane(interval=0.02, backend=b, threaded=threaded) for b in ("native", "python")
    ]
    opened = [started(plane, far_end.getsockname()) for plane in planes]
    rng = random.Random(seed)
    seq = rng.randrange(1 << 16)
    for _ in range(150):
        if rng.random() < 0.5:
            # An in-order run of audio and keys, the common case (and sequence wraps).
            packets = []
            for _ in range(rng.randrange(1, 8)):
                seq = (seq + 1) & 0xFFFF
                payload_type = rng.choice([8, 8, 101])
                body = bytes([rng.randrange(20), 0x0A, 0, 160]) if payload_type == 101 else b"a"
                packets.append(bytes(RtpPacket(payload_type, seq, rng.randrange(4) * 800, 5, body)))
        else:
            packets = [datagram(rng) for _ in range(rng.randrange(1, 5))]
        sender = forger if rng.random() < 0.1 else far_end
        for packet in packets:
            for stream, _ in opened:
                sender.sendto(packet, stream.local_address)
        for plane in planes:
            while plane.read_ready():
                pass
    (pump, pumped), (python, reference) = opened
    assert pumped.keys == reference.keys
    assert pumped.audio == reference.audio
    assert pump.stats.packets_received == python.stats.packets_received
    assert pump.stats.packets_expected == python.stats.packets_expected
    assert pump.stats.packets_lost == python.stats.packets_lost
    assert pump.rejected == python.rejected
    assert pump.source == python.source == far_end.getsockname()
    for (stream, _), plane in zip(opened, planes, strict=True):
        stream.close()
        plane.close()


async def test_a_tap_sees_each_frame_sent_and_a_held_voice_waits_for_release(
    peers: tuple[socket.socket, socket.socket],
) -> None:
    far_end, _ = peers
    plane = open_media_plane(interval=0.02, backend="native")
    stream = plane.stream(open_rtp_socket("127.0.0.1"), monotonic=lambda: 0.0)
    seen = Seen()
    stream.tap = seen
    done: list[bool] = []
    stream.on_audio_done = lambda: done.append(True)
    voice = (b"\x01" * 160, b"\x02" * 160)
    stream.start(
        far_end.getsockname(), frames=voice, silence=b"\xff" * 160,
        payload_type=0, dtmf_payload_type=None, no_rtp_timeout=None, hold_voice=True,
    )  # fmt: skip
    stream.tick()
    stream.release_voice()
    for _ in range(3):
        stream.tick()
    stream.tap = None
    stream.tick()
    assert seen.frames == [b"\xff" * 160, *voice, b"\xff" * 160]
    assert done == [True]
    payloads = [RtpPacket.parse(far_end.recv(2048)).payload for _ in range(5)]
    assert payloads == [b"\xff" * 160, *voice, b"\xff" * 160, b"\xff" * 160]
    assert stream.packets_sent == 5
    stream.close()
    assert stream.packets_sent == 5  # the counters outlive the slot, for the outcome
    plane.close()


def test_the_backend_is_the_pump_unless_told_otherwise() -> None:
    assert choose_backend({}) == "native"
    assert choose_backend({"IVRCAST_MEDIA": "python"}) == "python"
    assert choose_backend({"IVRCAST_MEDIA": "Native"}) == "native"
    with pytest.raises(RtpError, match="IVRCAST_MEDIA"):
        choose_backend({"IVRCAST_MEDIA": "fast"})
