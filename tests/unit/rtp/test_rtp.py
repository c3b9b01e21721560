"""RTP packets, G.711, RFC 4733 events and receive statistics, on captured packets."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrcast.rtp.dtmf import DtmfReceiver, TelephoneEvent
from ivrcast.rtp.errors import RtpParseError
from ivrcast.rtp.g711 import (
    ALAW_TO_LINEAR,
    ULAW_TO_LINEAR,
    alaw_encode_sample,
    decode_alaw,
    decode_ulaw,
    encode_alaw,
    encode_ulaw,
    ulaw_encode_sample,
)
from ivrcast.rtp.media import MediaPlane
from ivrcast.rtp.packet import RtpPacket
from ivrcast.rtp.stats import ReceiveStats

DATA = Path(__file__).parents[2] / "data" / "rtp"


def load(name: str) -> list[bytes]:
    """Packets stored as 2-byte big-endian length + datagram."""
    data = (DATA / name).read_bytes()
    packets, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i : i + 2], "big")
        packets.append(data[i + 2 : i + 2 + n])
        i += 2 + n
    return packets


@pytest.mark.parametrize("name", ["baresip-pcmu.bin", "sipp-dtmf-2833-1.bin"])
def test_captured_packets_parse_and_round_trip(name: str) -> None:
    packets = load(name)
    assert packets
    for data in packets:
        packet = RtpPacket.parse(data)
        assert bytes(packet) == data
        for cut in range(12):
            with pytest.raises(RtpParseError):
                RtpPacket.parse(data[:cut])


def test_baresip_pcmu_stream() -> None:
    packets = [RtpPacket.parse(d) for d in load("baresip-pcmu.bin")]
    assert {p.payload_type for p in packets} == {0}
    assert all(len(p.payload) == 160 for p in packets)
    assert len({p.ssrc for p in packets}) == 1
    seqs = [p.sequence_number for p in packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    assert all(b - a == 160 for a, b in zip(
        [p.timestamp for p in packets], [p.timestamp for p in packets[1:]], strict=False
    ))  # fmt: skip


def test_header_features() -> None:
    packet = RtpPacket(
        payload_type=96, sequence_number=65535, timestamp=2**32 - 1, ssrc=0xDEADBEEF,
        payload=b"abc", marker=True, csrc=(1, 2), extension=(0xBEDE, b"\x10\x01\x00\x00"),
    )  # fmt: skip
    assert RtpPacket.parse(bytes(packet)) == packet
    padded = bytearray(bytes(RtpPacket(0, 1, 2, 3, b"xyz")) + b"\x00\x00\x03")
    padded[0] |= 0x20
    assert RtpPacket.parse(bytes(padded)).payload == b"xyz"
    with pytest.raises(RtpParseError):
        RtpPacket.parse(b"\x40" + bytes(11))  # version 1


def test_g711_reference_values() -> None:
    # ITU-T G.711 tables: the extreme codes and the two zeros of each law.
    assert (ULAW_TO_LINEAR[0x00], ULAW_TO_LINEAR[0x80]) == (-32124, 32124)
    assert (ULAW_TO_LINEAR[0xFF], ULAW_TO_LINEAR[0x7F]) == (0, 0)
    assert (ALAW_TO_LINEAR[0xAA], ALAW_TO_LINEAR[0x2A]) == (32256, -32256)
    assert (ALAW_TO_LINEAR[0xD5], ALAW_TO_LINEAR[0x55]) == (8, -8)
    assert ulaw_encode_sample(0) == 0xFF
    assert alaw_encode_sample(0) == 0xD5
    assert ulaw_encode_sample(32767) == 0x80
    assert alaw_encode_sample(-32768) == 0x2A


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_decode_encode_is_identity_on_codes(law: str) -> None:
    decode, encode = (decode_ulaw, encode_ulaw) if law == "ulaw" else (decode_alaw, encode_alaw)
    codes = bytes(range(256))
    again = encode(decode(codes))
    if law == "ulaw":  # 0x7F (negative zero) encodes as 0xFF (positive zero)
        assert again == codes.replace(b"\x7f", b"\xff")
    else:
        assert again == codes


def test_g711_is_monotonic() -> None:
    samples = list(range(-32768, 32768, 64))
    decoded = decode_ulaw(encode_ulaw(samples))
    assert decoded == sorted(decoded)
    decoded = decode_alaw(encode_alaw(samples))
    assert decoded == sorted(decoded)


def test_sipp_rfc4733_capture_is_one_key() -> None:
    receiver = DtmfReceiver()
    keys = []
    events = []
    for data in load("sipp-dtmf-2833-1.bin"):
        packet = RtpPacket.parse(data)
        assert packet.payload_type == 101
        events.append(TelephoneEvent.parse(packet.payload))
        if (key := receiver.on_packet(packet.timestamp, packet.payload)) is not None:
            keys.append(key)
    assert keys == ["1"]
    assert events[-1].end
    assert sum(e.end for e in events) >= 3  # the redundant end packets


def test_rfc4733_event_sequence() -> None:
    """RFC 4733 §2.5: one event, updates with growing duration, three end packets, then
    a second press of the same key with a new timestamp."""
    receiver = DtmfReceiver()
    script = [
        (1000, TelephoneEvent(5, False, 10, 160)),
        (1000, TelephoneEvent(5, False, 10, 320)),
        (1000, TelephoneEvent(5, True, 10, 480)),
        (1000, TelephoneEvent(5, True, 10, 480)),
        (1000, TelephoneEvent(5, True, 10, 480)),
        (2000, TelephoneEvent(5, True, 10, 400)),  # start lost: only end packets arrive
        (3000, TelephoneEvent(11, False, 10, 160)),
        (4000, TelephoneEvent(16, False, 10, 160)),  # flash is not a key
    ]
    keys = [receiver.on_packet(ts, bytes(ev)) for ts, ev in script]
    assert [k for k in keys if k] == ["5", "5", "#"]
    assert TelephoneEvent.parse(bytes(script[2][1])) == script[2][1]
    with pytest.raises(RtpParseError):
        receiver.on_packet(5000, b"\x01\x02")


def test_stats_wrap_loss_and_reorder() -> None:
    stats = ReceiveStats()
    seqs = [65533, 65534, 65535, 0, 2, 1, 4]  # wrap, 1/2 reordered, 3 lost
    for seq in seqs:
        stats.add(ssrc=7, sequence_number=seq)
    assert stats.packets_received == 7
    assert stats.packets_expected == 8
    assert stats.packets_lost == 1
    stats.add(ssrc=8, sequence_number=100)  # new source
    assert stats.packets_expected == 9
    assert stats.packets_lost == 1


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


async def test_stream_sends_shared_frames_then_silence(
    receiver: socket.socket, media: MediaPlane
) -> None:
    from ivrcast.rtp.stream import open_rtp_socket, split_frames

    stream = media.stream(open_rtp_socket("127.0.0.1"), monotonic=lambda: 0.0)
    done: list[int] = []
    stream.on_audio_done = lambda: done.append(stream.packets_sent)
    audio = bytes(range(160)) * 2 + b"\x01" * 80  # 2.5 frames
    frames = split_frames(audio, b"\xff" * 160)
    assert [type(f) for f in frames] == [memoryview, memoryview, bytes]
    stream.start(
        receiver.getsockname(), frames=frames, silence=b"\xff" * 160,
        payload_type=0, dtmf_payload_type=101, no_rtp_timeout=None,
    )  # fmt: skip
    for _ in range(4):
        stream.tick()
    stream.close()
    stream.tick()  # a closed stream sends nothing
    packets = [RtpPacket.parse(receiver.recv(2048)) for _ in range(4)]
    with pytest.raises(BlockingIOError):
        receiver.recv(2048)
    assert [p.marker for p in packets] == [True, False, False, False]
    assert [p.payload for p in packets[:2]] == [audio[:160], audio[160:320]]
    assert packets[2].payload == b"\x01" * 80 + b"\xff" * 80
    assert packets[3].payload == b"\xff" * 160
    assert [(p.sequence_number - packets[0].sequence_number) & 0xFFFF for p in packets] == [
        0,
        1,
        2,
        3,
    ]
    assert [(p.timestamp - packets[0].timestamp) & 0xFFFFFFFF for p in packets] == [
        0,
        160,
        320,
        480,
    ]
    assert len({p.ssrc for p in packets}) == 1
    assert done == [3]  # once, right after the last frame of the voice
    assert stream.packets_sent == 4


def test_split_frames_are_views_of_the_voice() -> None:
    from ivrcast.rtp.stream import split_frames

    audio = bytes(range(160)) * 3
    frames = split_frames(audio, b"\xff" * 160)
    assert [bytes(f) for f in frames] == [bytes(range(160))] * 3
    assert all(isinstance(f, memoryview) and f.obj is audio for f in frames)
    assert split_frames(b"", b"\xff" * 160) == ()


async def test_rtp_timeout_counts_from_the_last_packet(
    receiver: socket.socket, media: MediaPlane
) -> None:
    import asyncio

    from ivrcast.rtp.stream import open_rtp_socket

    stream = media.stream(open_rtp_socket("127.0.0.1"), monotonic=lambda: 0.0)
    timeouts: list[float] = []
    stream.start(
        receiver.getsockname(), frames=(), silence=b"\xff" * 160,
        payload_type=0, dtmf_payload_type=101, no_rtp_timeout=1.0,
    )  # fmt: skip
    now = 0.0
    stream.on_rtp_timeout = lambda: timeouts.append(now)
    for now in (0.5, 0.9):
        stream.check_rtp_timeout(now)
    receiver.sendto(bytes(RtpPacket(0, 1, 160, 7, b"\xff" * 160)), stream.local_address)
    for _ in range(500):  # the reader callback runs on the event loop
        if stream.stats.packets_received:
            break
        await asyncio.sleep(0.01)
    for now in (1.2, 2.1, 2.3, 3.0):  # the packet is seen at 1.2: silent for 1.0 s at 2.2
        stream.check_rtp_timeout(now)
    stream.close()
    assert timeouts == [2.3]
    assert len(media) == 0  # closing the stream stopped watching its socket


def test_media_clock_keeps_its_grid_and_restarts_only_when_a_frame_late() -> None:
    from ivrcast.rtp.clock import tick_time

    scheduled, slots = 0.0, []
    for overshoot in (0.001, 0.019, 0.0, 0.045, 0.002):
        scheduled = tick_time(scheduled, scheduled + overshoot, 0.020)
        slots.append(round(scheduled, 3))
        scheduled += 0.020
    # Overshoot under a frame does not drift the grid; 45 ms late restarts it from then.
    assert slots == [0.0, 0.02, 0.04, 0.105, 0.125]


@pytest.mark.parametrize(("away", "dispatches"), [(0.0, [1, 2, 3]), (0.09, [1, 1, 1])])
async def test_readers_read_once_per_interval_the_loop_was_away(
    away: float, dispatches: list[int]
) -> None:
    """Three datagrams wait on one socket. A loop back on time reads one per dispatch;
    one back 4.5 intervals late reads all three in its first dispatch (and stops there)."""
    import asyncio

    from ivrcast.rtp.readers import SocketReaders

    clock_reads: list[int] = []  # SocketReaders reads the clock once per dispatch

    def monotonic() -> float:
        clock_reads.append(1)
        return away if len(clock_reads) > 1 else 0.0

    readers = SocketReaders(interval=0.02, monotonic=monotonic)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    read_in: list[int] = []  # the dispatch (clock reads so far minus the constructor's)

    def read_one() -> bool:
        try:
            sock.recv(2048)
        except BlockingIOError:
            return False
        read_in.append(len(clock_reads) - 1)
        return True

    readers.add(sock.fileno(), read_one)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for i in range(3):
            sender.sendto(bytes([i]), sock.getsockname())
    for _ in range(500):
        if len(read_in) == 3:
            break
        await asyncio.sleep(0.01)
    readers.remove(sock.fileno())
    readers.close()
    sock.close()
    assert read_in == dispatches
