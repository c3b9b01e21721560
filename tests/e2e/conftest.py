"""The whole service as a user runs it: the `ivrcast` command in its own process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return RunningServer(found.group(1), env, process, log)
        time.sleep(0.05)  # polling a condition (the log line), with a deadline
    process.kill()
    process.wait()
    raise AssertionError("the server did not start:\n" + log.read_text(errors="replace"))


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[RunningServer]:
    """`ivrcast serve` with the API only, on SQLite in a fresh data folder."""
    server = start_server(tmp_path / "data", "--no-dialer")
    yield server
    stop_server(server)
