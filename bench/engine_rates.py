"""`bench/engine.py --rates`: the engine's set-up rate against SIPp's own UAC, and how many
calls SIPp's UAC holds at once, both against the same echoing SIPp UAS in the same run.

- *set-up rate*: calls launched at R calls/s for `RATE_SECONDS`, each playing `HOLD` s
  of audio; the highest R at which every call completed.
- SIPp as a UAC plays a pcap of the same audio at exact 20 ms spacing (written here).
  It replays the capture's SSRC and sequence numbers from one source port for every
  call, so a receiver cannot tell its streams apart: its simultaneous-calls criterion is
  zero failed calls with all N up.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import time
from pathlib import Path

from engine_load import failures, request
from engine_peers import free_port, start_uas, tone
from ivrcast.rtp import EncodedAudio
from ivrcast.rtp.g711 import encode_alaw, encode_ulaw
from ivrcast.sip import CallOutcome, Engine, Trunk

RATE_SECONDS = 8
RATES = [200, 400, 600]
BASELINE_RATES = [60, 120, 200]
BASELINE_CONCURRENCY = [300, 600, 1000, 1300]
BASELINE_WINDOW = 10.0  # seconds all of a step's calls are up together
HOLD = 3.0  # seconds of audio per call

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


async def engine_rates(echo_port: int) -> list[dict[str, object]]:
    engine = Engine(no_rtp_timeout=None)
    await engine.start()
    samples = tone(HOLD)
    audio = EncodedAudio(encode_ulaw(samples), encode_alaw(samples))
    trunk = Trunk(name="echo", host="127.0.0.1", port=echo_port)
    rows: list[dict[str, object]] = []
    for rate in RATES:
        started = time.monotonic()
        tasks: list[asyncio.Task[CallOutcome]] = []
        for i in range(rate * RATE_SECONDS):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(engine.originate(request(f"r{rate}-{i}", trunk, audio)))
            )
        outcomes = await asyncio.gather(*tasks)
        rows.append({"rate": rate, "calls": len(outcomes), "failed": failures(outcomes),
                     "seconds": round(time.monotonic() - started, 1)})  # fmt: skip
        print(f"engine rate {rows[-1]}", flush=True)
        if rows[-1]["failed"]:
            break
    await engine.stop()
    return rows


def sipp_baseline(workdir: Path, echo_port: int) -> dict[str, list[dict[str, int]]]:
    rates = []
    for rate in BASELINE_RATES:
        r = run_sipp_uac(workdir, echo_port, rate, rate * RATE_SECONDS, rate * 10, int(HOLD * 1000))
        rates.append({"rate": rate, **r})
        print(f"sipp rate {rates[-1]}", flush=True)
        if r["failed"]:
            break
    steps = []
    for n in BASELINE_CONCURRENCY:
        hold_ms = int((n / 100 + BASELINE_WINDOW) * 1000)
        steps.append({"calls": n, **run_sipp_uac(workdir, echo_port, 100, n, n, hold_ms)})
        print(f"sipp simultaneous {steps[-1]}", flush=True)
        if steps[-1]["failed"]:
            break
    return {"rates": rates, "concurrency": steps}


def best_rate(rows: list[dict[str, object]] | list[dict[str, int]]) -> int:
    return max((int(str(r["rate"])) for r in rows if r["failed"] == 0), default=0)


def run(workdir: Path) -> dict[str, object]:
    pcap = workdir / "tone.pcap"
    write_pcap(pcap, encode_alaw(tone(60)))
    (workdir / "uac.xml").write_text(UAC.replace("@PCAP@", str(pcap)))
    echo = start_uas(workdir, "echo", None, echo=True)
    try:
        ours = asyncio.run(engine_rates(echo.port))
        sipp = sipp_baseline(workdir, echo.port)
    finally:
        echo.close()
    engine_best, sipp_best = best_rate(ours), best_rate(sipp["rates"])
    ratio = round(engine_best / sipp_best, 2) if sipp_best else None
    best = {"engine": engine_best, "sipp": sipp_best, "ratio": ratio}
    return {"engine": ours, "sipp": sipp, "best_rate": best}
