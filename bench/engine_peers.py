"""The far ends and meters of `bench/engine.py`: SIPp UAS processes, the timestamping
sink (`rtp_sink.c`), and readings of a process's CPU and memory and of the network
namespace's UDP counters. `bench/dialer.py` and `bench/fleet.py` use its UAS and tone
through `bench/engine.py`.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent

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
# SIPp opens no socket per call over UDP, but it caps its descriptors at this.
SIPP_MAX_SOCKET = 20000


def tone(seconds: float) -> list[int]:
    """A 440 Hz tone, on and off every 0.4 s."""
    return [
        int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) if (n // 3200) % 2 == 0 else 0
        for n in range(int(seconds * 8000))
    ]


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

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def start_uas(workdir: Path, name: str, media_port: int | None, echo: bool) -> Sipp:
    """A SIPp UAS that answers every INVITE at once. Its SDP offers `media_port` when
    given (RTP goes there, e.g. to the sink), else SIPp's own media port, which echoes
    the RTP back when `echo`."""
    port, mport = free_port(), free_port() & ~1
    scenario = workdir / f"{name}.xml"
    scenario.write_text(UAS.replace("@PORT@", str(media_port) if media_port else "[media_port]"))
    args = ["timeout", "-k", "5", "1800", "sipp", "-sf", str(scenario), "-i", "127.0.0.1",
            "-p", str(port), "-mi", "127.0.0.1", "-mp", str(mport), "-nostdin",
            "-max_socket", str(SIPP_MAX_SOCKET)]  # fmt: skip
    args += ["-rtp_echo"] if echo else []
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir
    )
    time.sleep(0.5)  # bench only: SIPp binds within a few ms
    return Sipp(process, port, mport)


def compile_c(source: str, workdir: Path) -> Path:
    """Build `bench/<source>` with the system compiler (bench/engine.py needs one)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("bench/engine.py builds its sink with cc: install gcc")
    binary = workdir / Path(source).stem
    subprocess.run([compiler, "-O2", "-o", str(binary), str(HERE / source)], check=True)
    return binary


class Sink:
    """The timestamping receiver (`rtp_sink.c`) and its control socket."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        binary = compile_c("rtp_sink.c", workdir)
        self.process = subprocess.Popen([str(binary), str(self.port)])
        self.ctrl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ctrl.settimeout(10)

    def mark(self) -> None:
        self.ctrl.sendto(b"CTRLmark", ("127.0.0.1", self.port))

    def stop(self) -> dict[str, float]:
        """The window's pacing: {"packets", "streams", "p50", "p99", "max", "drops"}."""
        self.ctrl.sendto(b"CTRLstop", ("127.0.0.1", self.port))
        return json.loads(self.ctrl.recv(4096))  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            self.ctrl.sendto(b"CTRLexit", ("127.0.0.1", self.port))
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


# -- readings --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, field: str) -> float:
    """`VmRSS` (now) or `VmHWM` (peak so far) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def udp_counters() -> dict[str, int]:
    """The network namespace's UDP counters (`/proc/net/snmp`): OutDatagrams,
    RcvbufErrors, ..."""
    rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    head, values = (row for row in rows if row[0] == "Udp:")
    return {name: int(value) for name, value in zip(head[1:], values[1:], strict=True)}


def udp_drops() -> dict[int, int]:
    """Datagrams each UDP socket of the namespace dropped so far (its receive buffer was
    full), summed by local port (`/proc/net/udp`)."""
    drops: dict[int, int] = {}
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        port = int(fields[1].split(":")[1], 16)
        drops[port] = drops.get(port, 0) + int(fields[-1])
    return drops


def raise_open_files(needed: int) -> int:
    """Lift RLIMIT_NOFILE (inherited by the children) to at least `needed` where
    allowed; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, needed)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
