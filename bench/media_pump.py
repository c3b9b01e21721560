"""CPU per RTP packet of the media plane, against a bare Python loop in the same run.
`python bench/media_pump.py [--streams 500 1000 2000] [--seconds 4] [--repeat 1]`
(about a minute); never asserts.

Three senders, each in a process of its own, each running N streams of 20 ms G.711 to a
local echo (`rtp_echo.c`, built here with `cc`, batching with recvmmsg/sendmmsg so that
it takes little of the machine) and reading every echoed packet back:
- *floor*: a bare Python loop (one epoll, no per-call objects): the loop of
  `bench/engine.py`'s `run_python_floor`, counting without a per-packet add, and reading
  between two ticks even when late (restarting its schedule as `MediaClock` does), so
  that at 2,000 streams on a busy machine it still reads its echoes;
- *python*: the engine's pure-Python media plane (`RtpStream`s on `SocketReaders`, ticked
  by `MediaClock`), as with `IVRCAST_MEDIA=python`;
- *native*: the native pump (`PumpStream`s on `StreamPump`, whose media thread ticks and
  reads them off the event loop), the default.
The streams play a voice longer than the run, with receive statistics, RFC 4733 decoding
and source latching on, as in a call; no SIP. Echoes missing are told apart: `lost`
(sequence gaps the streams saw), `dropped` (the kernel dropped them at the sender's own
sockets, read too late) and `echo_dropped` (at the echo's socket, the echo too slow).
CPU per packet = the process's CPU time over the window / (packets sent + packets
received in the window), after a warm-up.
Ratios are against the floor measured in the same run. The machine is shared: repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ivrcast.rtp.clock import MediaClock
from ivrcast.rtp.g711 import SILENCE_FRAMES, encode_alaw
from ivrcast.rtp.media import Backend, MediaStream, open_media_plane
from ivrcast.rtp.stream import open_rtp_socket, split_frames

STREAMS = [500, 1000, 2000]
WARMUP = 1.5  # seconds before the window: every stream up, buffers settled
SECONDS = 4.0
MODES: list[str] = ["floor", "python", "native"]
PTIME = 0.020


def voice(seconds: float) -> bytes:
    samples = int(8000 * seconds)
    return encode_alaw([int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(samples)])


def run_floor(n: int, port: int, warmup: float, seconds: float) -> dict[str, float]:
    header = struct.Struct("!BBHII")
    socks = []
    for i in range(n):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        socks.append((sock, ("127.0.0.1", port), i))
    readers = {sock.fileno(): sock for sock, _, _ in socks}
    poller = select.epoll()
    for fd in readers:
        poller.register(fd, select.EPOLLIN)
    buffer, payload = bytearray(12), memoryview(bytes(160))
    start = next_tick = time.monotonic()
    window_start = start + warmup
    tick = sent = received = errors = 0
    measuring = False
    cpu0 = 0.0
    drops: dict[int, int] = {}
    while True:
        now = time.monotonic()
        if not measuring and now >= window_start:
            measuring, cpu0, sent, received, errors = True, time.process_time(), 0, 0, 0
            drops = udp_drops()
        if measuring and now >= window_start + seconds:
            break
        if now >= next_tick:
            for sock, address, ssrc in socks:
                header.pack_into(buffer, 0, 0x80, 8, tick & 0xFFFF, tick * 160, ssrc)
                try:
                    sock.sendmsg((buffer, payload), (), 0, address)
                except OSError:
                    errors += 1
            sent += n
            tick += 1
            # As `MediaClock`: a tick a frame late restarts the schedule, and the echoes
            # are read between any two ticks (a loop that only catches up reads nothing).
            next_tick = now + PTIME if now - next_tick >= PTIME else next_tick + PTIME
        ready = poller.poll(max(next_tick - time.monotonic(), 0))
        received += len(ready)
        for fd, _ in ready:
            try:
                readers[fd].recv(2048)
            except OSError:
                errors += 1
    cpu = time.process_time() - cpu0
    result = {
        "cpu": cpu,
        "sent": sent - errors,
        "received": received,
        "lost": 0,
        "dropped": dropped_since(drops, {sock.getsockname()[1] for sock, _, _ in socks}),
        "late_ticks": 0,
    }
    for sock, _, _ in socks:
        sock.close()
    return result


def udp_drops() -> dict[int, int]:
    """Datagrams the kernel dropped at each local IPv4 UDP port (a full receive buffer)."""
    drops: dict[int, int] = {}
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        port = int(fields[1].rsplit(":", 1)[1], 16)
        drops[port] = drops.get(port, 0) + int(fields[-1])
    return drops


def dropped_since(before: dict[int, int], ports: set[int]) -> int:
    after = udp_drops()
    return sum(after.get(port, 0) - before.get(port, 0) for port in ports)


def totals(streams: list[MediaStream]) -> tuple[int, int, int]:
    """Packets sent, received, and lost on the way back (sequence gaps)."""
    return (
        sum(s.packets_sent for s in streams),
        sum(s.stats.packets_received for s in streams),
        sum(s.stats.packets_lost for s in streams),
    )


async def run_plane(
    backend: Backend, n: int, port: int, warmup: float, seconds: float
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    plane = open_media_plane(interval=PTIME, backend=backend)
    clock = MediaClock()
    frames = split_frames(voice(warmup + seconds + 5), SILENCE_FRAMES["PCMA"])
    streams = []
    for i in range(n):
        stream = plane.stream(open_rtp_socket("127.0.0.1"), label=str(i), monotonic=loop.time)
        stream.start(
            ("127.0.0.1", port),
            frames=frames,
            silence=SILENCE_FRAMES["PCMA"],
            payload_type=8,
            dtmf_payload_type=101,
            no_rtp_timeout=30.0,
        )
        clock.add(stream)
        streams.append(stream)
    clock.start()
    await asyncio.sleep(warmup)
    cpu0 = time.process_time()
    sent0, received0, lost0 = totals(streams)
    drops = udp_drops()
    await asyncio.sleep(seconds)
    sent1, received1, lost1 = totals(streams)
    dropped = dropped_since(drops, {s.local_address[1] for s in streams})
    cpu = time.process_time() - cpu0
    late = clock.late_ticks
    await clock.stop()
    for stream in streams:
        stream.close()
    plane.close()
    return {
        "cpu": cpu,
        "sent": sent1 - sent0,
        "received": received1 - received0,
        "lost": lost1 - lost0,
        "dropped": dropped,
        "late_ticks": late,
    }


def run_one(mode: str, n: int, port: int, warmup: float, seconds: float) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if mode == "floor":
        result = run_floor(n, port, warmup, seconds)
    else:
        backend: Backend = "native" if mode == "native" else "python"
        result = asyncio.run(run_plane(backend, n, port, warmup, seconds))
    print(json.dumps(result))


def build_echo(workdir: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("bench/media_pump.py needs a C compiler for its echo (rtp_echo.c)")
    binary = workdir / "rtp_echo"
    source = Path(__file__).with_name("rtp_echo.c")
    subprocess.run([compiler, "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure(mode: str, n: int, port: int, seconds: float) -> dict[str, float]:
    command = [sys.executable, __file__, "--one", mode, str(n), str(port), str(seconds)]
    drops = udp_drops()
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    echo_dropped = dropped_since(drops, {port})
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    packets = result["sent"] + result["received"]
    result["us_per_packet"] = round(result["cpu"] / packets * 1e6, 3) if packets else math.nan
    result["echoed"] = round(result["received"] / result["sent"], 3) if result["sent"] else 0.0
    result["cores"] = round(result["cpu"] / seconds, 3)
    # Over the whole child run (set-up and warm-up too): the echo's buffer overflowing.
    result["echo_dropped"] = echo_dropped
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=STREAMS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--one", nargs=4, metavar=("MODE", "N", "PORT", "SECONDS"))
    args = parser.parse_args()
    if args.one:
        mode, n, port, seconds = args.one
        run_one(mode, int(n), int(port), WARMUP, float(seconds))
        return
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        echo = subprocess.Popen(
            [str(build_echo(Path(tmp))), str(port)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert echo.stdout is not None
            echo.stdout.readline()  # "ready"
            rows = []
            for repeat in range(args.repeat):
                for n in args.streams:
                    results = {mode: measure(mode, n, port, args.seconds) for mode in MODES}
                    floor = results["floor"]["us_per_packet"]
                    row = {
                        "repeat": repeat,
                        "streams": n,
                        **{f"{m}_us": r["us_per_packet"] for m, r in results.items()},
                        **{f"{m}_cores": r["cores"] for m, r in results.items()},
                        **{f"{m}_echoed": r["echoed"] for m, r in results.items()},
                        **{f"{m}_lost": r["lost"] for m, r in results.items()},
                        **{f"{m}_dropped": r["dropped"] for m, r in results.items()},
                        **{f"{m}_echo_dropped": r["echo_dropped"] for m, r in results.items()},
                        "python_late_ticks": results["python"]["late_ticks"],
                        "native_late_ticks": results["native"]["late_ticks"],
                        "python_vs_floor": round(results["python"]["us_per_packet"] / floor, 2),
                        "native_vs_floor": round(results["native"]["us_per_packet"] / floor, 2),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            echo.kill()
            echo.wait()
    print("streams  floor µs/pkt  python µs/pkt (×floor)  native µs/pkt (×floor)")
    for row in rows:
        print(
            f"{row['streams']:>7}  {row['floor_us']:>12}  "
            f"{row['python_us']:>13} ({row['python_vs_floor']}×)  "
            f"{row['native_us']:>13} ({row['native_vs_floor']}×)"
        )


if __name__ == "__main__":
    main()
