"""Helpers for driving the engine against real SIP peers on loopback.

`sipp` starts a SIPp UAS scenario (the `.xml` files beside the tests) on a free port and
waits until its socket is bound; `SippRun.finish()` waits for it to exit and returns its
logs, which assertion messages include.
"""

from __future__ import annotations

import asyncio
import math
import socket
from dataclasses import dataclass
from pathlib import Path

from ivrcast.rtp import EncodedAudio
from ivrcast.rtp.g711 import encode_alaw, encode_ulaw
from ivrcast.sip import CallRequest, Trunk

HERE = Path(__file__).parent
SIPP = "/usr/bin/sipp"
# A peer is given a port that was free a moment ago; if another process took it meanwhile,
# the peer exits at once and is started again on another.
BIND_ATTEMPTS = 3
PROCESS_TIMEOUT = 60  # `timeout -k 5 60`: SIPp was seen to ignore its own -timeout


def free_udp_port(even: bool = False) -> int:
    """A port the kernel just handed out and released (SIPp binds it next)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if not even or port % 2 == 0:
            return port


def udp_port_bound(port: int) -> bool:
    needle = f":{port:04X} "
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(line.split()[1].endswith(needle.strip()) for line in lines):
            return True
    return False


def bound_or_exited(port: int, process: asyncio.subprocess.Process) -> bool:
    """Whether a peer started on `port` is listening, or has exited (it lost the port)."""
    return udp_port_bound(port) or process.returncode is not None


@dataclass
class SippRun:
    process: asyncio.subprocess.Process
    port: int
    media_port: int
    workdir: Path
    scenario: str

    @property
    def trunk(self) -> Trunk:
        return Trunk(name="sipp", host="127.0.0.1", port=self.port)

    def logs(self) -> str:
        parts = [f"--- SIPp scenario {self.scenario}, exit {self.process.returncode}"]
        for path in sorted(self.workdir.glob("*")):
            if path.is_file() and path.stat().st_size:
                text = path.read_text(errors="replace")
                parts.append(f"--- {path.name}\n{text[-6000:]}")
        return "\n".join(parts)

    async def finish(self, limit: float = 20) -> int:
        try:
            await asyncio.wait_for(self.process.wait(), limit)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode

    def messages(self, start_line: str) -> int:
        """How many traced messages start with `start_line` (e.g. "INVITE", "ACK")."""
        log = self.workdir / "messages.log"
        if not log.exists():
            return 0
        lines = log.read_text(errors="replace").splitlines()
        return sum(1 for line in lines if line.startswith(start_line))


def tone_bursts(seconds: float, *, period: float = 0.4, duty: float = 0.5) -> list[int]:
    """A 1 kHz tone switched on and off every `period`: an envelope that is easy to
    find again in a recording, generated here so no audio files are committed."""
    rate = 8000
    samples = []
    for n in range(int(seconds * rate)):
        t = n / rate
        on = (t % period) < period * duty
        samples.append(int(12000 * math.sin(2 * math.pi * 1000 * t)) if on else 0)
    return samples


def encoded(samples: list[int]) -> EncodedAudio:
    return EncodedAudio(pcmu=encode_ulaw(samples), pcma=encode_alaw(samples))


def silence(seconds: float) -> EncodedAudio:
    n = int(seconds * 8000)
    return EncodedAudio(pcmu=b"\xff" * n, pcma=b"\xd5" * n)


def call_request(
    trunk: Trunk,
    audio: EncodedAudio,
    *,
    wait_time: float = 10,
    conn_time: float = 30,
    collect_keys: bool = False,
    key_wait: float = 2.0,
    uuid: str = "test-call",
    dest: str = "6281234567",
) -> CallRequest:
    return CallRequest(
        call_uuid=uuid,
        trunk=trunk,
        dest=dest,
        caller_id="622150001000",
        audio=audio,
        wait_time=wait_time,
        conn_time=conn_time,
        collect_keys=collect_keys,
        key_wait=key_wait,
    )
