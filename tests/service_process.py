"""The whole service as a user runs it: `ivrcast serve` in a process of its own.

Shared by the end-to-end and browser tests. The server runs in a process group of its
own (with its dialer child), and stopping it waits for the whole group.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

IVRCAST = [sys.executable, "-m", "ivrcast"]


@dataclass
class RunningServer:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*IVRCAST, *args], env=self.env, capture_output=True, text=True, timeout=120
        )


def start_server(data_dir: Path, *extra: str, config: Path | None = None) -> RunningServer:
    """Start `ivrcast serve` on a free port and wait for the line that names it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "IVRCAST_DATA_DIR": str(data_dir)}
    env.pop("IVRCAST_DATABASE_URL", None)
    if config is not None:
        env["IVRCAST_CONFIG"] = str(config)
    log = data_dir / "server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*IVRCAST, "serve", "--host", "127.0.0.1", "--port", "0", *extra],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return RunningServer(found.group(1), env, process, log)
        time.sleep(0.05)  # polling a condition (the log line), with a deadline
    stop_server(RunningServer("", env, process, log))
    raise AssertionError("the server did not start:\n" + log.read_text(errors="replace"))


def stop_server(server: RunningServer) -> None:
    """Stop the server and its dialer child. The whole process group is signalled, so
    that nothing the server started can outlive the test, however the server ends."""
    group = os.getpgid(server.process.pid)
    os.killpg(group, signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        server.process.wait()
    deadline = time.monotonic() + 30
    with contextlib.suppress(ProcessLookupError):
        while time.monotonic() < deadline:
            os.killpg(group, 0)  # raises once the group's last process has exited
            time.sleep(0.1)  # polling a condition (the dialer's exit), with a deadline
        os.killpg(group, signal.SIGKILL)
