"""Benchmark of the call engine against a SIPp UAS on loopback, with SIPp's own UAC as
the baseline in the same run.  `python bench/engine.py` (about 13 minutes); never asserts.
`python bench/engine.py --media` (about 2 minutes) measures only what `record=1` and
`amd=1` cost: the same calls with and without them (`bench_media`).

What is measured
- *set-up rate*: calls launched at R calls/s for `RATE_SECONDS`, each playing 3 s of
  audio to a SIPp UAS that answers and echoes RTP (`-rtp_echo`); the highest R at which
  every call completed.
- *simultaneous calls*: N answered calls held together (plus `PROBES` probe calls), all
  playing audio; the largest N whose RTP keeps a p99 pacing error under 5 ms.
- *pacing error* is measured at the receiver, in a separate process (`--probe`): the
  probe calls are answered by a second SIPp UAS whose SDP points at the probe's socket,
  which reads kernel receive timestamps (SO_TIMESTAMPNS) so its own scheduling does not
  count.  Error = |inter-arrival − 20 ms| per packet, per SSRC, over a steady window.
- *peak RSS per 1000 calls*: growth of this process's peak RSS during the largest
  concurrency step, divided by the calls held.
- *CPU*: core-seconds per second of this process and of the echoing SIPp over the window.
Baselines, in the same run against the same UAS and probe:
- SIPp as a UAC (`play_pcap_audio` of a pcap of the same audio at exact 20 ms spacing,
  written here), at the same measurements;
- the *floors* of the concurrency test: the same N + `PROBES` RTP streams with no SIP at
  all, sent by a bare Python loop (`--floor`) and by a small C program (`rtp_floor.c`,
  built here with `cc`) that either sleeps between ticks or spins a whole core. They show
  what this machine and the echoing peer allow a Python process, and any process; N = 0
  (the probe streams alone) is the machine's timer jitter.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import math
import os
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ivrcast.rtp import EncodedAudio
from ivrcast.rtp.amd import AmdConfig
from ivrcast.rtp.g711 import encode_alaw, encode_ulaw
from ivrcast.sip import CallOutcome, CallRequest, Engine, Trunk

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; missing from Python 3.11
PROBES = 20
RATE_SECONDS = 8
RATES = [200, 400, 600]
CONCURRENCY = [500, 1000, 1500, 2000]
FLOOR_CONCURRENCY = [0, 500, 1000, 1500, 2000]
BASELINE_RATES = [60, 120, 200]
BASELINE_CONCURRENCY = [300, 600, 1000, 1300]
HOLD = 3.0  # seconds of audio per call in the rate test
# `--media`: the same calls with and without `record=1` and `amd=1` on every one.
MEDIA_CALLS = [200, 400]
MEDIA_RATE = 50  # calls/s while launching
MEDIA_VOICE = 8.0  # seconds of audio per call
STEADY = 10.0  # pacing window once every call of a concurrency step is up
FLOOR_WARMUP = 2.0  # floors: seconds of sending before the pacing window
PACING_LIMIT_MS = 5.0

UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench answer">
  <recv request="INVITE"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio @PORT@ RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000

]]></send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""

UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench uac">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000

]]></send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec play_pcap_audio="@PCAP@"/></action></nop>
  <pause/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""


def tone(seconds: float) -> list[int]:
    return [
        int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) if (n // 3200) % 2 == 0 else 0
        for n in range(int(seconds * 8000))
    ]


def write_pcap(path: Path, alaw: bytes) -> None:
    """RTP/PCMA packets at exactly 20 ms spacing (what `play_pcap_audio` replays)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(len(alaw) // 160):
        rtp = (
            struct.pack("!BBHII", 0x80, 8, i & 0xFFFF, i * 160, 0x1234)
            + alaw[i * 160 : (i + 1) * 160]
        )
        udp = struct.pack("!HHHH", 40000, 40000, 8 + len(rtp), 0) + rtp
        loopback = socket.inet_aton("127.0.0.1")
        header = (0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, loopback, loopback)
        ip = struct.pack("!BBHHHBBH4s4s", *header) + udp
        frame = b"\0" * 12 + b"\x08\x00" + ip
        t = i * 0.02
        out += struct.pack("<IIII", int(t), round((t % 1) * 1e6), len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))


# -- the probe receiver (a separate process) --------------------------------------


def quantile(ordered: list[float], q: float) -> float:
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else -1.0


def run_probe(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind(("127.0.0.1", port))
    last: dict[tuple[object, int], float] = {}
    errors: list[float] = []
    counting = False
    while True:
        data, anc, _, addr = sock.recvmsg(2048, 64)
        if data.startswith(b"CTRL"):
            command = data[4:].decode()
            if command == "mark":
                errors.clear()
                last.clear()
                counting = True
            elif command in ("stop", "exit"):
                errors.sort()
                reply = {"packets": len(errors), "p50": quantile(errors, 0.5),
                         "p99": quantile(errors, 0.99), "max": quantile(errors, 1.0),
                         "streams": len(last)}  # fmt: skip
                sock.sendto(json.dumps(reply).encode(), addr)
                counting = False
                if command == "exit":
                    return
            continue
        if not counting or len(data) < 12:
            continue
        when = next(
            (s + ns / 1e9 for level, kind, raw in anc
             if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS
             for s, ns in [struct.unpack("qq", raw[:16])]),
            time.time(),
        )  # fmt: skip
        # SIPp's pcap replay keeps the capture's SSRC in every call: key by source too.
        stream = (addr, struct.unpack_from("!I", data, 8)[0])
        previous = last.get(stream)
        if previous is not None:
            errors.append(abs(when - previous - 0.020) * 1000)
        last[stream] = when


class Probe:
    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, __file__, "--probe", str(self.port)])
        self.ctrl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ctrl.settimeout(10)

    def command(self, what: str) -> dict[str, float]:
        self.ctrl.sendto(b"CTRL" + what.encode(), ("127.0.0.1", self.port))
        if what == "mark":
            return {}
        return json.loads(self.ctrl.recv(4096))  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            self.command("exit")
        except OSError:
            self.process.kill()
        self.process.wait()


# -- the floors (separate processes) ----------------------------------------------


def run_python_floor(n: int, media_port: int, probe_port: int, seconds: float) -> None:
    """N streams to the echo UAS and `PROBES` to the probe from a bare loop: the least a
    Python process can do per packet (no SIP, one epoll, no per-call objects)."""
    header = struct.Struct("!BBHII")
    socks = []
    for i in range(n + PROBES):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        socks.append((sock, ("127.0.0.1", media_port if i < n else probe_port), i))
    readers = {sock.fileno(): sock for sock, _, _ in socks}
    poller = select.epoll()
    for fd in readers:
        poller.register(fd, select.EPOLLIN)
    buffer, payload = bytearray(12), memoryview(bytes(160))
    start = next_tick = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        if time.monotonic() >= next_tick:
            for sock, address, ssrc in socks:
                header.pack_into(buffer, 0, 0x80, 8, tick & 0xFFFF, tick * 160, ssrc)
                try:  # noqa: SIM105 (a context manager per packet would raise the floor)
                    sock.sendmsg((buffer, payload), (), 0, address)
                except OSError:
                    pass
            tick += 1
            next_tick += 0.020
            continue
        for fd, _ in poller.poll(max(next_tick - time.monotonic(), 0)):
            try:  # noqa: SIM105
                readers[fd].recv(2048)
            except OSError:
                pass


def build_c_floor(workdir: Path) -> Path | None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    binary = workdir / "rtp_floor"
    source = Path(__file__).with_name("rtp_floor.c")
    subprocess.run([compiler, "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Core-seconds per second of some processes over a window."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids
        self.started = time.monotonic()
        self.base = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def read(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        return {f"cpu_{name}": round((cpu_seconds(pid) - self.base[name]) / elapsed, 2)
                for name, pid in self.pids.items()}  # fmt: skip


def measure_floor(command: list[str], echo: Sipp, probe: Probe) -> dict[str, float]:
    floor = subprocess.Popen(command)
    try:
        time.sleep(FLOOR_WARMUP)  # bench only: the floor has no readiness signal
        meter = CpuMeter(floor=floor.pid, sipp=echo.pid)
        probe.command("mark")
        time.sleep(STEADY)
        pacing = probe.command("stop")
        cpu = meter.read()
    finally:
        floor.kill()
        floor.wait()
    return {"p50_ms": round(pacing["p50"], 2), "p99_ms": round(pacing["p99"], 2),
            "max_ms": round(pacing["max"], 2), **cpu}  # fmt: skip


def bench_floors(workdir: Path, echo: Sipp, probe: Probe) -> list[dict[str, object]]:
    c_floor = build_c_floor(workdir)
    seconds = str(FLOOR_WARMUP + STEADY + 5)
    steps: list[dict[str, object]] = []
    for n in FLOOR_CONCURRENCY:
        variants = {"python": [sys.executable, __file__, "--floor", str(n), str(echo.media_port),
                               str(probe.port), seconds]}  # fmt: skip
        if c_floor is not None:
            for mode in ("sleep", "spin"):
                variants[f"c_{mode}"] = [str(c_floor), str(n), str(echo.media_port),
                                         str(PROBES), str(probe.port), seconds, mode]  # fmt: skip
        for name, command in variants.items():
            steps.append({"floor": name, "calls": n, **measure_floor(command, echo, probe)})
            print(f"floor {steps[-1]}", flush=True)
    return steps


# -- SIPp processes ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sipp:
    process: subprocess.Popen[bytes]
    port: int
    media_port: int

    @property
    def pid(self) -> int:
        """SIPp's own pid (it runs under `timeout`)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        children = path.read_text().split()
        return int(children[0]) if children else self.process.pid


def start_uas(workdir: Path, name: str, media_port: int | None, echo: bool) -> Sipp:
    port, mport = free_port(), free_port() & ~1
    scenario = workdir / f"{name}.xml"
    scenario.write_text(UAS.replace("@PORT@", str(media_port) if media_port else "[media_port]"))
    args = ["timeout", "-k", "5", "900", "sipp", "-sf", str(scenario), "-i", "127.0.0.1",
            "-p", str(port), "-mi", "127.0.0.1", "-mp", str(mport), "-nostdin", "-bg_x",
            "-max_socket", "20000"]  # fmt: skip
    args = [a for a in args if a != "-bg_x"] + (["-rtp_echo"] if echo else [])
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir
    )
    time.sleep(0.5)  # bench only: SIPp binds within a few ms
    return Sipp(process, port, mport)


def run_sipp_uac(
    workdir: Path, target: int, rate: int, calls: int, limit: int, hold_ms: int
) -> dict[str, int]:
    stat = workdir / f"uac-{target}-{rate}-{calls}.csv"
    args = ["timeout", "-k", "5", "300", "sipp", f"127.0.0.1:{target}",
            "-sf", str(workdir / "uac.xml"), "-i", "127.0.0.1", "-p", str(free_port()),
            "-mi", "127.0.0.1", "-mp", str(free_port() & ~1), "-r", str(rate),
            "-m", str(calls), "-l", str(limit), "-d", str(hold_ms), "-nostdin",
            "-trace_stat", "-stf", str(stat), "-fd", "1"]  # fmt: skip
    subprocess.run(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir, check=False
    )
    rows = stat.read_text().splitlines()
    head, last = rows[0].split(";"), rows[-1].split(";")
    value = dict(zip(head, last, strict=False))
    return {"ok": int(value["SuccessfulCall(C)"]), "failed": int(value["FailedCall(C)"])}


# -- our engine ----------------------------------------------------------------------


def request(i: int, trunk: Trunk, audio: EncodedAudio) -> CallRequest:
    return CallRequest(call_uuid=f"bench-{i}", trunk=trunk, dest="100", caller_id="200",
                       audio=audio, wait_time=30, conn_time=120)  # fmt: skip


async def launch(
    engine: Engine, n: int, rate: float, trunk: Trunk, audio: EncodedAudio
) -> list[asyncio.Task[CallOutcome]]:
    tasks = []
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(engine.originate(request(i, trunk, audio))))
    return tasks


def current_rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def failures(outcomes: list[CallOutcome]) -> int:
    return sum(1 for o in outcomes if o.status != "completed" or o.hangup_by != "us")


async def wait_answered(engine: Engine, n: int, limit: float) -> None:
    """Poll the media clock's stream count (a bench may poll; tests wait on events)."""
    end = time.monotonic() + limit
    while len(engine.media_clock) < n and time.monotonic() < end:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def bench_ours(workdir: Path, echo: Sipp, probe_uas: Sipp, probe: Probe) -> dict[str, object]:
    engine = Engine(no_rtp_timeout=None)
    await engine.start()
    results: dict[str, object] = {}
    short = tone(HOLD)
    audio = EncodedAudio(encode_ulaw(short), encode_alaw(short))
    trunk = Trunk(name="echo", host="127.0.0.1", port=echo.port)
    rates = []
    for rate in RATES:
        t0 = time.monotonic()
        outcomes = await asyncio.gather(
            *await launch(engine, rate * RATE_SECONDS, rate, trunk, audio)
        )
        bad = failures(outcomes)
        rates.append({"rate": rate, "calls": len(outcomes), "failed": bad,
                      "seconds": round(time.monotonic() - t0, 1),
                      "late_ticks": engine.media_clock.late_ticks})  # fmt: skip
        print(f"ours rate {rate}/s: {len(outcomes)} calls, {bad} failed", flush=True)
        if bad:
            break
    results["rates"] = rates
    await engine.stop()
    steps = []
    probe_trunk = Trunk(name="probe", host="127.0.0.1", port=probe_uas.port)
    for n in CONCURRENCY:
        # A fresh engine per step; the calls play longer than the step and are ended by
        # engine.stop() (BYE from us) once the pacing window is over.
        engine = Engine(no_rtp_timeout=None)
        await engine.start()
        long = tone(n / 200 * 2 + STEADY + 30)
        long_audio = EncodedAudio(encode_ulaw(long), encode_alaw(long))
        rss0 = current_rss_mb()
        t0 = time.monotonic()
        tasks = await launch(engine, n, 200, trunk, long_audio)
        tasks += await launch(engine, PROBES, 100, probe_trunk, long_audio)
        await wait_answered(engine, n + PROBES, 60)
        all_up = round(time.monotonic() - t0, 1)
        up = len(engine.media_clock)
        late0 = engine.media_clock.late_ticks
        meter = CpuMeter(ours=os.getpid(), sipp=echo.pid)
        probe.command("mark")
        await asyncio.sleep(STEADY)
        pacing = probe.command("stop")
        cpu = meter.read()
        late = engine.media_clock.late_ticks - late0
        rss1 = current_rss_mb()
        await engine.stop()
        outcomes = await asyncio.gather(*tasks)
        bad = failures(outcomes)
        steps.append({"calls": n, "up": up, "seconds_to_all_up": all_up, "failed": bad,
                      "p50_ms": round(pacing["p50"], 2), "p99_ms": round(pacing["p99"], 2),
                      "max_ms": round(pacing["max"], 2), "probe_packets": pacing["packets"],
                      "late_ticks": late,
                      "rtp_sent": sum(o.rtp_sent for o in outcomes),
                      "rtp_echoed": sum(o.rtp_received for o in outcomes),
                      "rtp_lost": sum(o.rtp_lost for o in outcomes),
                      "rss_mb_per_1000": round((rss1 - rss0) / (n + PROBES) * 1000, 1),
                      **cpu})  # fmt: skip
        print(f"ours {n} simultaneous: {steps[-1]}", flush=True)
        if bad or up < n + PROBES:
            break
    results["concurrency"] = steps
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


def bench_sipp(workdir: Path, echo: Sipp, probe_uas: Sipp, probe: Probe) -> dict[str, object]:
    results: dict[str, object] = {}
    rates = []
    for rate in BASELINE_RATES:
        r = run_sipp_uac(workdir, echo.port, rate, rate * RATE_SECONDS, rate * 10, int(HOLD * 1000))
        rates.append({"rate": rate, **r})
        print(f"sipp rate {rate}/s: {r}", flush=True)
        if r["failed"]:
            break
    results["rates"] = rates
    steps = []
    for n in BASELINE_CONCURRENCY:
        # SIPp replays the pcap with the capture's SSRC, sequence numbers and one source
        # port for every call, so a receiver cannot tell its calls apart and per-stream
        # pacing cannot be measured; the baseline's concurrency criterion is zero failed
        # calls while all N are up together (echo UAS, same as ours).
        ramp = n / 100
        hold_ms = int((ramp + STEADY) * 1000)
        r = run_sipp_uac(workdir, echo.port, 100, n, n, hold_ms)
        steps.append({"calls": n, "failed": r["failed"], "ok": r["ok"], "p99_ms": 0.0})
        print(f"sipp {n} simultaneous: {steps[-1]}", flush=True)
        if r["failed"]:
            break
    results["concurrency"] = steps
    return results


async def bench_media(workdir: Path, echo: Sipp) -> list[dict[str, object]]:
    """N calls at once against the echoing UAS, plain and then with a recording and
    answering-machine detection on each (the echo sends our silence back, so detection
    listens its whole `initial_silence_ms` and says "unknown"; the voice then plays).
    CPU per call is this process's core-seconds over the run divided by N; memory per
    call is the RSS growth at the peak, divided by N."""
    engine = Engine(no_rtp_timeout=None)
    await engine.start()
    samples = tone(MEDIA_VOICE)
    audio = EncodedAudio(encode_ulaw(samples), encode_alaw(samples))
    trunk = Trunk(name="echo", host="127.0.0.1", port=echo.port)
    folder = workdir / "recordings"
    folder.mkdir()
    steps: list[dict[str, object]] = []
    for n in MEDIA_CALLS:
        for variant in ("plain", "record+amd"):
            taps = variant != "plain"
            rss_before = current_rss_mb()
            meter = CpuMeter(ours=os.getpid())
            started = time.monotonic()
            tasks = []
            for i in range(n):
                delay = started + i / MEDIA_RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                call = request(i, trunk, audio)
                if taps:
                    call = replace(
                        call,
                        call_uuid=f"{variant}-{n}-{i}",
                        record_to=folder / f"{n}-{i}.wav",
                        amd=AmdConfig(),
                    )
                tasks.append(asyncio.create_task(engine.originate(call)))
            peak = rss_before
            while not all(t.done() for t in tasks):
                peak = max(peak, current_rss_mb())
                await asyncio.sleep(0.2)
            outcomes = [t.result() for t in tasks]
            elapsed = time.monotonic() - started
            cpu = meter.read()["cpu_ours"] * elapsed
            steps.append({
                "variant": variant, "calls": n, "failed": failures(outcomes),
                "recorded": sum(o.recorded for o in outcomes),
                "answered_by": dict(collections.Counter(str(o.answered_by) for o in outcomes)),
                "cpu_ms_per_call": round(1000 * cpu / n, 1),
                "rss_growth_kb_per_call": round(1024 * (peak - rss_before) / n, 1),
                "late_ticks": engine.media_clock.late_ticks,
            })  # fmt: skip
            print(f"media {steps[-1]}", flush=True)
            for path in folder.iterdir():
                path.unlink()
    await engine.stop()
    return steps


def main_media() -> None:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        echo = start_uas(workdir, "echo", None, echo=True)
        try:
            steps = asyncio.run(bench_media(workdir, echo))
        finally:
            echo.process.send_signal(signal.SIGTERM)
            echo.process.wait()
    print(json.dumps({"media": steps, "cpus": os.cpu_count()}, indent=2))


def best(steps: list[dict[str, object]], key: str) -> int:
    ok = [int(str(s[key])) for s in steps
          if s.get("failed") == 0 and 0 <= float(str(s["p99_ms"])) < PACING_LIMIT_MS
          and int(str(s.get("up", s[key]))) >= int(str(s[key]))]  # fmt: skip
    return max(ok, default=0)


def main(concurrency_only: bool) -> None:
    logging.basicConfig(level=logging.ERROR)
    if concurrency_only:
        RATES.clear()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        pcap = workdir / "tone.pcap"
        write_pcap(pcap, encode_alaw(tone(60)))
        (workdir / "uac.xml").write_text(UAC.replace("@PCAP@", str(pcap)))
        probe = Probe()
        echo = start_uas(workdir, "echo", None, echo=True)
        probe_uas = start_uas(workdir, "probe", probe.port, echo=False)
        try:
            floors = bench_floors(workdir, echo, probe)
            ours = asyncio.run(bench_ours(workdir, echo, probe_uas, probe))
            sipp: dict[str, object] = {"rates": [], "concurrency": []}
            if not concurrency_only:
                sipp = bench_sipp(workdir, echo, probe_uas, probe)
        finally:
            for p in (echo.process, probe_uas.process):
                p.send_signal(signal.SIGTERM)
                p.wait()
            probe.close()
    ours_rate = max((int(str(r["rate"])) for r in ours["rates"] if r["failed"] == 0), default=0)  # type: ignore[attr-defined]
    sipp_rate = max((int(str(r["rate"])) for r in sipp["rates"] if r["failed"] == 0), default=0)  # type: ignore[attr-defined]
    ours_conc = best(ours["concurrency"], "calls")  # type: ignore[arg-type]
    sipp_conc = best(sipp["concurrency"], "calls")  # type: ignore[arg-type]
    pacing = {}
    for n in FLOOR_CONCURRENCY:
        row = {str(f["floor"]): f["p99_ms"] for f in floors if f["calls"] == n}
        for step in ours["concurrency"]:  # type: ignore[attr-defined]
            if step["calls"] == n:
                row["ours"] = step["p99_ms"]
        pacing[n] = row
    clean_floors = {
        str(f["floor"]): max((int(str(g["calls"])) for g in floors if g["floor"] == f["floor"]
                              and float(str(g["p99_ms"])) < PACING_LIMIT_MS), default=0)
        for f in floors
    }  # fmt: skip
    summary = {
        "ours": ours, "sipp": sipp, "floors": floors, "cpus": os.cpu_count(),
        "p99_pacing_ms_by_calls": pacing,
        "largest_clean_concurrency": {"ours": best(ours["concurrency"], "calls"),  # type: ignore[arg-type]
                                      **clean_floors},
        "best_rate": {"ours": ours_rate, "sipp": sipp_rate,
                      "ratio": round(ours_rate / sipp_rate, 2) if sipp_rate else None},
        "best_concurrency": {"ours": ours_conc, "sipp": sipp_conc,
                             "ratio": round(ours_conc / sipp_conc, 2) if sipp_conc else None},
    }  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--floor", nargs=4, type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--concurrency-only",
        action="store_true",
        help="skip the set-up rates and the SIPp UAC baseline (a quicker look)",
    )
    parser.add_argument(
        "--media",
        action="store_true",
        help="only the cost of record=1 and amd=1: the same calls with and without them",
    )
    options = parser.parse_args()
    if options.media:
        main_media()
    elif options.probe:
        run_probe(options.probe)
    elif options.floor:
        n, media_port, probe_port, seconds = options.floor
        run_python_floor(int(n), int(media_port), int(probe_port), seconds)
    else:
        main(options.concurrency_only)
