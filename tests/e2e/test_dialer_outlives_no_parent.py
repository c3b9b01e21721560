"""kill -9 of `ivrcast serve`: its dialer child must not keep dialing on its own.

The child is told by a pipe from the parent (end-of-file when the parent is gone, by
whatever signal) and stops as a SIGTERM would stop it: gracefully, with its log lines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from service_process import start_server


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def has_exited(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet (PID 1 in a container may never)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until(condition: object, limit: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling a condition, with a deadline


def test_the_dialer_stops_gracefully_when_serve_is_killed(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    group = server.process.pid  # start_server gives the server a session of its own
    try:
        wait_until(lambda: "running: trunks" in server.log.read_text(), 60, "the dialer")
        dialers = children_of(server.process.pid)
        assert len(dialers) == 1, dialers
        (dialer,) = dialers
        assert b"ivrcast.dialer" in Path(f"/proc/{dialer}/cmdline").read_bytes()

        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        wait_until(lambda: has_exited(dialer), 30, f"the orphaned dialer {dialer} to exit")
        log = server.log.read_text()
        assert "the process that started this dialer is gone; stopping" in log, log
        assert "dialer stopping: 0 calls in progress" in log, log
        assert "dialer stopped;" in log, log  # the graceful stop ran to its end
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
