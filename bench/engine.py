"""The call engine at thousands of simultaneous calls, against a bare Python loop sending
the same streams to the same peers in the same run. Never asserts.

    python bench/engine.py              # 2,000 and 4,000 calls, then --media
    python bench/engine.py --quick      # 100 and 200 calls, a shorter window
    python bench/engine.py --calls 500,1000 --setups sink --planes default,python
    python bench/engine.py --media      # only record=1 + amd=1 against plain calls
    python bench/engine.py --rates      # only the set-up rate against SIPp's UAC

Each step holds N calls up together, in one of two setups:
- *echo*: the N calls go to a SIPp UAS that answers and echoes RTP (`-rtp_echo`), plus
  `PROBES` calls to a second UAS whose SDP points at the sink, for the pacing;
- *sink*: all N calls go to the UAS whose SDP points at the sink (`rtp_sink.c`), which
  stamps every packet of every stream with its kernel receive time (SO_TIMESTAMPNS)
  and echoes nothing.
In each, the same streams (N to the echo and `PROBES` to the sink, or N to the sink)
come in turn from the *bare Python loop* (`engine_load.run_python_floor`: no SIP, no
per-call objects, one epoll), the engine (`Engine.originate`, through its public API
only, so it measures whichever media plane is installed; `--planes default,python`
adds a run with `IVRCAST_MEDIA=python`), and with `--c-floor` a C loop
(`rtp_floor.c`). Each is a process of its own, measured over the same window
(`--window` s, once every stream is up and `SETTLE` s more):
- *failed calls*: calls not answered, or not ended by our BYE after the window;
- *receiver p99 pacing error*: |inter-arrival − 20 ms| per packet per stream, at the
  sink, with kernel timestamps (so the sink's own scheduling does not count);
- *CPU per packet*: the process's user + system CPU over the window, divided by the
  datagrams it sent and received in it. These are counted by the kernel: the whole
  bench runs in a network namespace of its own (`unshare --net`, when root), whose UDP
  `OutDatagrams` over the window are the packets the subject sent plus those the echo
  sent back to it, less the echoes its full sockets dropped (`/proc/net/udp`, per
  socket); other processes of the machine do not count. Without root the host's
  counters are used and the output says so;
- *peak RSS per 1,000 calls*: the process's peak RSS (VmHWM) at the window's end, less
  its RSS before it opened its first socket, per 1,000 streams.
Every ratio is engine ÷ loop of the same step, in the same run.

The peers' limits at 4,000 calls: the subjects hold 4,000+ RTP sockets (RLIMIT_NOFILE is
raised for every process here), SIPp opens no socket per call over UDP and is given
`-max_socket 20000`, and the sink takes every stream on one socket of a 64 MB buffer.

`--media` (issue 12): at each of `--media-calls`, N calls against the echo, together
for `engine_load.MEDIA_HOLD` s, plain and then with a recording and answering-machine
detection on each: failed calls, CPU per call and RSS growth per call, each variant in
a fresh process.

`--stall MS` blocks each engine's event loop for MS ms every `engine_load.STALL_PERIOD`
(200 ms) through the window, as a garbage-collector pass, a burst of SIP or a slow store
call would: what the media clock's pacing owes to the loop (the pump's media thread
should not notice). The loops are not stalled; they stay the reference.

With `--planes default,python --c-floor` the whole bench took 11-12 minutes on a shared
2-core machine (three runs); with one plane and no C loop, fewer than half the subjects.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import engine_rates
from engine_peers import (
    Sink,
    Sipp,
    compile_c,
    cpu_seconds,
    memory_mb,
    raise_open_files,
    start_uas,
    tone,
    udp_counters,
    udp_drops,
)

__all__ = ["start_uas", "tone"]  # also bench/dialer.py's and bench/fleet.py's peer and audio

LOAD = str(Path(__file__).with_name("engine_load.py"))
NETNS_MARK = "IVRCAST_BENCH_NETNS"  # set in the re-executed bench inside its namespace
PROBES = 20  # echo setup: streams to the sink, for the pacing
SETTLE = 2.0  # seconds between "every stream is up" and the window
LAUNCH_RATE = 200.0  # calls/s while setting a step up
MEDIA_RATE = 200.0  # calls/s while setting a --media step up
READY_LIMIT = 180.0  # seconds for a subject to have every stream up

Message = dict[str, Any]


@dataclass
class Peers:
    echo: Sipp  # answers, echoes RTP
    sink_uas: Sipp  # answers, its SDP points at the sink
    sink: Sink


@dataclass
class Subject:
    """One sender of a step's streams (`command_for` starts it for a setup and N), and
    what it adds to the environment (the media plane)."""

    name: str
    kind: Literal["loop", "engine", "c"]
    env: dict[str, str] = field(default_factory=dict)
    stall_ms: float = 0.0  # an engine's loop blocked this long every `STALL_PERIOD`

    def environment(self) -> dict[str, str]:
        """This process's environment, with `IVRCAST_MEDIA` only when the subject sets it."""
        env = {**os.environ, **self.env}
        if "IVRCAST_MEDIA" not in self.env:
            env.pop("IVRCAST_MEDIA", None)
        return env


# -- running a subject -----------------------------------------------------------------


def read_message(process: subprocess.Popen[bytes], limit: float) -> Message:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], limit)
    if not ready:
        raise TimeoutError(f"no word from {process.args!r} in {limit} s")
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{process.args!r} exited ({process.wait()})")
    return json.loads(line)  # type: ignore[no-any-return]


def streams_for(setup: str, n: int) -> tuple[int, int]:
    """(streams to the echo, streams to the sink) of a step."""
    return (n, PROBES) if setup == "echo" else (0, n)


def command_for(
    subject: Subject, setup: str, n: int, peers: Peers, c_floor: Path | None
) -> list[str]:
    to_echo, to_sink = streams_for(setup, n)
    if subject.kind == "engine":
        return [sys.executable, LOAD, "engine", str(to_echo), str(peers.echo.port),
                str(to_sink), str(peers.sink_uas.port), str(LAUNCH_RATE),
                str(subject.stall_ms)]  # fmt: skip
    if subject.kind == "c":
        assert c_floor is not None
        return [str(c_floor), str(to_echo), str(peers.echo.media_port), str(to_sink),
                str(peers.sink.port), "3600", "sleep"]  # fmt: skip
    return [sys.executable, LOAD, "floor", str(to_echo), str(peers.echo.media_port),
            str(to_sink), str(peers.sink.port)]  # fmt: skip


def measure_window(pid: int, peers: Peers, window: float) -> Message:
    udp0, drops0, cpu0 = udp_counters(), udp_drops(), cpu_seconds(pid)
    echo0, sink0 = cpu_seconds(peers.echo.pid), cpu_seconds(peers.sink.process.pid)
    started = time.monotonic()
    peers.sink.mark()
    time.sleep(window)
    pacing = peers.sink.stop()
    elapsed = time.monotonic() - started
    cpu, udp1, drops1 = cpu_seconds(pid) - cpu0, udp_counters(), udp_drops()
    dropped = {port: n - drops0.get(port, 0) for port, n in drops1.items()}
    echo_drops = dropped.pop(peers.echo.media_port, 0)
    dropped.pop(peers.sink.port, None)
    # Every datagram sent in the namespace is the subject's or an echo of one; an echo
    # the subject's full socket dropped was not received.
    subject_drops = sum(dropped.values())
    packets = udp1["OutDatagrams"] - udp0["OutDatagrams"] - subject_drops
    return {
        "p50_ms": pacing["p50"], "p99_ms": pacing["p99"], "max_ms": pacing["max"],
        "sink_packets": pacing["packets"], "sink_streams": pacing["streams"],
        "per_stream_per_s": round(pacing["packets"] / max(pacing["streams"], 1) / elapsed, 1),
        "sink_drops": pacing["drops"], "packets": packets,
        "drops_at_subject": subject_drops, "drops_at_echo": echo_drops,
        "cpu_cores": round(cpu / elapsed, 3),
        "cpu_us_per_packet": round(cpu / packets * 1e6, 3) if packets else None,
        "cpu_echo_uas": round((cpu_seconds(peers.echo.pid) - echo0) / elapsed, 3),
        "cpu_sink": round((cpu_seconds(peers.sink.process.pid) - sink0) / elapsed, 3),
        "peak_rss_mb": round(memory_mb(pid, "VmHWM"), 1),
    }  # fmt: skip


def run_subject(
    subject: Subject, setup: str, n: int, peers: Peers, window: float, c_floor: Path | None
) -> Message:
    command = command_for(subject, setup, n, peers, c_floor)
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               env=subject.environment(), bufsize=0)  # fmt: skip
    row: Message = {"setup": setup, "calls": n, "subject": subject.name}
    try:
        if subject.kind == "c":
            rss_before = None  # (a C process's RSS is its sockets' and nothing else)
        else:
            rss_before = read_message(process, READY_LIMIT)["rss_mb"]
            row.update(read_message(process, READY_LIMIT + n / LAUNCH_RATE))
        time.sleep(SETTLE)  # bench only: the last streams' first packets settle
        row.update(measure_window(process.pid, peers, window))
        if rss_before is not None:
            growth = row["peak_rss_mb"] - rss_before
            row["rss_mb_per_1000"] = round(growth / sum(streams_for(setup, n)) * 1000, 1)
        if subject.kind == "engine":
            assert process.stdin is not None
            process.stdin.write(b"stop\n")
            row.update(read_message(process, 120))
    finally:
        process.kill()
        process.wait()
    return row


def ratios(rows: list[Message]) -> list[Message]:
    """Each engine row against the loop's row of the same setup and size."""
    loops = {(r["setup"], r["calls"]): r for r in rows if r["subject"] == "python loop"}
    out = []
    for row in rows:
        loop = loops.get((row["setup"], row["calls"]))
        if loop is None or row is loop:
            continue
        out.append({
            "setup": row["setup"], "calls": row["calls"], "subject": row["subject"],
            "failed": row.get("failed"),
            "p99_ratio": ratio(row["p99_ms"], loop["p99_ms"]),
            "cpu_per_packet_ratio": ratio(row["cpu_us_per_packet"], loop["cpu_us_per_packet"]),
            "rss_per_1000_ratio": ratio(row.get("rss_mb_per_1000"), loop["rss_mb_per_1000"]),
        })  # fmt: skip
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


# -- the runs ----------------------------------------------------------------------------


def concurrency(
    workdir: Path, peers: Peers, options: argparse.Namespace, planes: list[Subject]
) -> list[Message]:
    c_floor = compile_c("rtp_floor.c", workdir) if options.c_floor else None
    subjects = [Subject("python loop", "loop"), *planes]
    subjects += [Subject("C loop", "c")] if c_floor else []
    rows = []
    for n in options.calls:
        for setup in options.setups:
            for subject in subjects:
                try:
                    row = run_subject(subject, setup, n, peers, options.window, c_floor)
                except (OSError, RuntimeError, ValueError) as error:  # one step, not the run
                    row = {"setup": setup, "calls": n, "subject": subject.name,
                           "error": repr(error)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def media(
    workdir: Path, echo: Sipp, options: argparse.Namespace, planes: list[Subject]
) -> list[Message]:
    rows = []
    recordings = workdir / "recordings"
    for plane in planes:
        for n in options.media_calls:
            for variant in ("plain", "record+amd"):
                recordings.mkdir()
                command = [sys.executable, LOAD, "media", str(n), variant, str(echo.port),
                           str(MEDIA_RATE), str(recordings)]  # fmt: skip
                done = subprocess.run(command, env=plane.environment(), stdout=subprocess.PIPE)
                if done.returncode == 0:
                    rows.append({"subject": plane.name, **json.loads(done.stdout)})
                else:  # one step, not the run
                    rows.append({"subject": plane.name, "calls": n, "variant": variant,
                                 "error": f"exit status {done.returncode}"})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
                shutil.rmtree(recordings)
    return rows


def enter_private_network() -> str:
    """Re-run this bench in a network namespace of its own (loopback only) when root, so
    the UDP counters are this bench's alone; return what the counters cover."""
    if os.environ.get(NETNS_MARK):
        return "a network namespace of the bench's own"
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return "the host's (other processes' UDP counts too: packet figures are upper bounds)"
    os.environ[NETNS_MARK] = "1"
    script = 'ip link set lo up && exec "$@"'
    os.execvp("unshare", ["unshare", "--net", "--", "sh", "-c", script, "sh",
                          sys.executable, *sys.argv])  # fmt: skip


def main() -> None:
    options = parse_options()
    counters = enter_private_network()
    open_files = raise_open_files(2 * max([*options.calls, *options.media_calls]) + 1000)
    planes = [Subject("engine", "engine", stall_ms=options.stall)]
    if "python" in options.planes:
        planes.append(
            Subject(
                "engine, IVRCAST_MEDIA=python",
                "engine",
                {"IVRCAST_MEDIA": "python"},
                stall_ms=options.stall,
            )
        )
    if "default" not in options.planes:
        planes.pop(0)
    summary: Message = {"cpus": os.cpu_count(), "udp_counters": counters,
                        "open_files": open_files, "window_s": options.window}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if options.rates:
            summary["rates"] = engine_rates.run(workdir)
        else:
            sink = Sink(workdir)
            peers = Peers(start_uas(workdir, "echo", None, echo=True),
                          start_uas(workdir, "sink", sink.port, echo=False), sink)  # fmt: skip
            try:
                if not options.media:
                    rows = concurrency(workdir, peers, options, planes)
                    summary |= {"concurrency": rows, "ratios": ratios(rows)}
                if options.media_calls:
                    summary["media"] = media(workdir, peers.echo, options, planes)
            finally:
                peers.echo.close()
                peers.sink_uas.close()
                sink.close()
    print(json.dumps(summary, indent=2))
    print_tables(summary)


def megabytes(value: float | None) -> str:
    return "–" if value is None else f"{value} MB"


def print_tables(summary: Message) -> None:
    """The run's figures as the Markdown tables of docs/benchmarks.md."""
    rows = summary.get("concurrency", [])
    loops = {(r["setup"], r["calls"]): r for r in rows if r["subject"] == "python loop"}
    if rows:
        print(
            "\n| setup | calls | sender | failed calls | p99 pacing | ÷ loop | CPU per packet"
            " | ÷ loop | CPU | packets/s per stream | RSS per 1,000 calls | dropped by echo |"
        )
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        loop = loops.get((r["setup"], r["calls"]))
        if "error" in r or loop is None or "error" in loop:
            print(f"| {r['setup']} | {r['calls']:,} | {r['subject']} | {r.get('error')} |")
            continue
        print(f"| {r['setup']} | {r['calls']:,} | {r['subject']} | {r.get('failed', '–')} "
              f"| {r['p99_ms']:.1f} ms | {ratio(r['p99_ms'], loop['p99_ms'])}x "
              f"| {r['cpu_us_per_packet']:.2f} µs "
              f"| {ratio(r['cpu_us_per_packet'], loop['cpu_us_per_packet'])}x "
              f"| {r['cpu_cores']:.2f} | {r['per_stream_per_s']} "
              f"| {megabytes(r.get('rss_mb_per_1000'))} | {r['drops_at_echo']:,} |")  # fmt: skip
    media_rows = summary.get("media", [])
    if media_rows:
        print(
            "\n| calls | sender | variant | failed | at once | recorded | CPU per call"
            " | RSS growth per call | late ticks |"
        )
        print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for m in media_rows:
        if "error" in m:
            print(f"| {m['calls']:,} | {m['subject']} | {m['variant']} | {m['error']} |")
            continue
        print(f"| {m['calls']:,} | {m['subject']} | {m['variant']} | {m['failed']} "
              f"| {m['most_at_once']:,} | {m['recorded']:,} | {m['cpu_ms_per_call']:.1f} ms "
              f"| {m['rss_growth_kb_per_call']:.1f} KB | {m['late_ticks']} |")  # fmt: skip


def numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n]


def names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=numbers, default=[2000, 4000], help="the steps (calls)")
    parser.add_argument("--setups", type=names, default=["echo", "sink"])
    parser.add_argument("--planes", type=names, default=["default"],
                        help="default (the installed media plane) and/or python")  # fmt: skip
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per step")
    parser.add_argument("--c-floor", action="store_true", help="add the C loop (rtp_floor.c)")
    parser.add_argument("--media", action="store_true", help="only record=1 + amd=1 (issue 12)")
    parser.add_argument("--media-calls", type=numbers, default=[500, 1000, 2000])
    parser.add_argument("--rates", action="store_true", help="only the set-up rate vs SIPp's UAC")
    parser.add_argument("--quick", action="store_true", help="100 and 200 calls, a 4 s window")
    parser.add_argument("--stall", type=float, default=0.0, metavar="MS",
                        help="block each engine's event loop MS ms every 200 ms")  # fmt: skip
    options = parser.parse_args()
    if options.quick:
        options.calls, options.media_calls, options.window = [100, 200], [50, 100], 4.0
    return options


if __name__ == "__main__":
    main()
