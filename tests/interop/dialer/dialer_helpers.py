"""Helpers for dialer tests: settings, seeding accounts, voices and tasks, and waiting
on rows (never on the clock)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from factories import add_account, add_task, add_voice
from ivrcast.clock import Clock
from ivrcast.config import Settings
from ivrcast.dialer.service import run_dialer
from ivrcast.rtp.g711 import encode_alaw, encode_ulaw
from ivrcast.store.engine import Database
from ivrcast.store.tables import FINAL_STATES, call_records, calls
from peers import require_executable
from waiting import wait_for_in_thread

ALWAYS_OPEN = {"window": "00:00-24:00"}


def settings_for(
    database_url: str,
    data_dir: Path,
    *,
    trunks: Sequence[dict[str, Any]] = (),
    demo: str = "auto",
    countries: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    amd: dict[str, Any] | None = None,
    **dialer: Any,
) -> Settings:
    if countries is None:
        countries = {code: ALWAYS_OPEN for code in ("id", "in", "ph", "mx", "co", "tha", "vn")}
    return Settings.model_validate(
        {
            "data_dir": data_dir,
            "database_url": database_url,
            "demo": demo,
            "countries": countries,
            "limits": limits or {},
            "amd": amd or {},
            "trunks": list(trunks),
            "dialer": {"poll_interval": 0.05, "heartbeat_seconds": 1.0, **dialer},
        }
    )


def tone(seconds: float) -> tuple[bytes, bytes]:
    samples = [
        int(6000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(int(seconds * 8000))
    ]
    return encode_ulaw(samples), encode_alaw(samples)


def seed_account(
    db: Database,
    appid: str = "acme",
    *,
    max_concurrency: int = 1000,
    callback_url: str | None = "http://127.0.0.1:9/cb",
) -> tuple[int, int]:
    """An account and a voice; returns (account_id, voice_id)."""
    now = datetime.now(UTC)
    pcmu, pcma = tone(0.5)
    with db.write() as conn:
        account = add_account(
            conn, appid, now=now, callback_url=callback_url, max_concurrency=max_concurrency
        )
        voice_id = add_voice(conn, account.id, now=now, name="hello", pcmu=pcmu, pcma=pcma)
    return account.id, voice_id


def submit(
    db: Database,
    account_id: int,
    voice_id: int,
    numbers: Sequence[str],
    *,
    nationcode: str = "id",
    todayonly: int = 2,
    waittime: int = 10,
    conntime: int = 5,
    userkey: bool = False,
    disnumber: str | None = None,
    now: datetime | None = None,
    local_day: date | None = None,
    record: bool = False,
    amd: bool = False,
    amdaction: str | None = None,
) -> str:
    now = now or datetime.now(UTC)
    with db.write() as conn:
        return add_task(
            conn,
            account_id,
            voice_id,
            numbers,
            now=now,
            local_day=local_day,
            nationcode=nationcode,
            userkey=userkey,
            todayonly=todayonly,
            waittime=waittime,
            conntime=conntime,
            disnumber=disnumber,
            record=record,
            amd=amd,
            amdaction=amdaction,
        )


def id_numbers(count: int, *, start: int = 0, last_digit: str | None = None) -> list[str]:
    """Distinct Indonesian mobile numbers in E.164."""
    out = []
    for n in range(start, start + count):
        body = f"{n:07d}"
        if last_digit is not None:
            body = f"{n:06d}{last_digit}"
        out.append(f"+62812{body}")
    return out


def count_final(db: Database, task_id: str | None = None) -> int:
    query = select(func.count()).select_from(calls).where(calls.c.status.in_(FINAL_STATES))
    if task_id is not None:
        query = query.where(calls.c.task_id == task_id)
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def call_rows(db: Database, task_id: str | None = None) -> list[dict[str, Any]]:
    query = select(calls).order_by(calls.c.id)
    if task_id is not None:
        query = query.where(calls.c.task_id == task_id)
    with db.read() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def record_counts(db: Database) -> dict[int, int]:
    with db.read() as conn:
        rows = conn.execute(
            select(call_records.c.call_id, func.count()).group_by(call_records.c.call_id)
        )
        return {call_id: n for call_id, n in rows}


@contextlib.asynccontextmanager
async def running_dialer(
    settings: Settings, *, clock: Clock | None = None
) -> AsyncIterator[asyncio.Event]:
    """Run the dialer in this event loop; stops it gracefully on exit."""
    stop = asyncio.Event()
    started = asyncio.Event()
    task = asyncio.ensure_future(run_dialer(settings, clock=clock, stop=stop, ready=started.set))
    waiter = asyncio.create_task(started.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise RuntimeError("the dialer returned before it was ready")
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


# -- SIPp as the trunk -----------------------------------------------------------------

HERE = Path(__file__).parent
SIPP = "/usr/bin/sipp"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def udp_port_bound(port: int) -> bool:
    needle = f":{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1].endswith(needle) for line in lines)


@dataclass(frozen=True)
class SipEntry:
    at: datetime
    received: bool
    first_line: str
    call_id: str
    cseq_method: str


@dataclass
class SippTrunk:
    """A SIPp UAS standing in for a carrier; its message log is the ground truth of
    what reached the trunk."""

    process: asyncio.subprocess.Process
    port: int
    workdir: Path
    scenario: str

    @property
    def proxy(self) -> str:
        return f"127.0.0.1:{self.port}"

    def trunk(self, name: str, **settings: Any) -> dict[str, Any]:
        return {"name": name, "countries": ["id"], "proxy": self.proxy, **settings}

    async def finish(self, limit: float = 30) -> None:
        """Wait for SIPp to exit by itself (its -m count reached), so its log is whole."""
        try:
            await asyncio.wait_for(self.process.wait(), limit)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"SIPp did not finish\n{self.logs()}") from None

    async def stop(self) -> None:
        """End SIPp before its -m count (SIGINT: it closes its logs on the way out)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def logs(self) -> str:
        parts = [f"--- SIPp {self.scenario}, exit {self.process.returncode}"]
        for path in sorted(self.workdir.glob("*.log")):
            if path.stat().st_size:
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def entries(self) -> list[SipEntry]:
        path = self.workdir / "messages.log"
        if not path.exists():
            return []
        out = []
        for block in path.read_text(errors="replace").split("-" * 47 + " ")[1:]:
            lines = block.splitlines()
            stamp = datetime.strptime(lines[0].strip(), "%Y-%m-%d %H:%M:%S.%f")
            body = [line for line in lines[2:] if line.strip()]
            if not body:
                continue
            headers: dict[str, str] = {}
            for line in body[1:]:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), value.strip())
            out.append(
                SipEntry(
                    at=stamp,
                    received="received" in lines[1],
                    first_line=body[0],
                    call_id=headers.get("call-id", ""),
                    cseq_method=headers.get("cseq", " ").split()[-1],
                )
            )
        return out

    def invites(self) -> dict[str, list[str]]:
        """Call-IDs of the INVITEs received, per dialed number (retransmissions of an
        INVITE share its Call-ID, so a number dialed twice shows two Call-IDs)."""
        seen: dict[str, list[str]] = {}
        for entry in self.entries():
            if entry.received and entry.first_line.startswith("INVITE "):
                number = entry.first_line.split()[1].removeprefix("sip:").split("@")[0]
                ids = seen.setdefault(number, [])
                if entry.call_id not in ids:
                    ids.append(entry.call_id)
        return seen

    def invite_times(self) -> list[datetime]:
        """When each distinct INVITE (first copy) arrived."""
        first: dict[str, datetime] = {}
        for entry in self.entries():
            if entry.received and entry.first_line.startswith("INVITE "):
                first.setdefault(entry.call_id, entry.at)
        return sorted(first.values())

    def max_concurrent(self) -> int:
        """Most calls up at once as the trunk saw them: from the first INVITE of a call
        to its final response (a failure) or the BYE that ended it."""
        live: set[str] = set()
        peak = 0
        for entry in self.entries():
            line = entry.first_line
            if entry.received and line.startswith("INVITE "):
                live.add(entry.call_id)
                peak = max(peak, len(live))
            elif (entry.received and line.startswith(("BYE ", "CANCEL "))) or (
                (
                    not entry.received
                    and line.startswith("SIP/2.0 ")
                    and entry.cseq_method == "INVITE"
                )
                and int(line.split()[1]) >= 300
            ):
                live.discard(entry.call_id)
        return peak


def cps_bound_holds(
    times: list[datetime], rate: float, window: float = 1.0, slack: int = 1
) -> tuple[bool, int, int]:
    """Whether every `window` seconds hold at most floor(window * rate) + 1 INVITEs (the
    pacer's bound), plus `slack` for one INVITE the event loop sent late."""
    allowed = int(window * rate) + 1 + slack
    worst = 0
    start = 0
    for end, at in enumerate(times):
        while (at - times[start]).total_seconds() >= window:
            start += 1
        worst = max(worst, end - start + 1)
    return worst <= allowed, worst, allowed


async def start_sipp(workdir: Path, scenario: str, calls: int) -> SippTrunk:
    """A SIPp UAS on a free port that exits after `calls` calls."""
    require_executable(SIPP, "sip-tester")
    await asyncio.to_thread(workdir.mkdir, parents=True)
    port = free_udp_port()
    args = [
        "-k", "5", "240", SIPP,
        "-sf", str(HERE / scenario),
        "-i", "127.0.0.1", "-p", str(port),
        "-mi", "127.0.0.1", "-mp", str(free_udp_port()),
        "-m", str(calls), "-nostdin",
        "-trace_msg", "-message_file", str(workdir / "messages.log"),
        "-trace_err", "-error_file", str(workdir / "errors.log"),
    ]  # fmt: skip
    out = (workdir / "stdout.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        "timeout", *args, stdout=out, stderr=asyncio.subprocess.STDOUT, cwd=workdir
    )
    out.close()
    trunk = SippTrunk(process, port, workdir, scenario)
    await wait_for_in_thread(
        lambda: udp_port_bound(port) or process.returncode is not None, "SIPp to bind", limit=10
    )
    if process.returncode is not None:
        raise AssertionError(f"SIPp exited at start\n{trunk.logs()}")
    return trunk
