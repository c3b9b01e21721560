"""The whole service as a user runs it: the `ivrcast` command in its own process."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from service_process import RunningServer, start_server, stop_server


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[RunningServer]:
    """`ivrcast serve` with the API only, on SQLite in a fresh data folder."""
    server = start_server(tmp_path / "data", "--no-dialer")
    yield server
    stop_server(server)


EXAMPLE = Path(__file__).parents[1] / "data" / "seed" / "playvoice_example.php"


def run_example(tmp_path: Path, url: str, fields: dict[str, str], **numbers: int) -> dict[str, Any]:
    """Run the example with the given string `fields` and integer `numbers` replaced."""
    script = EXAMPLE.read_text()
    script = script.replace("'http://127.0.0.1:8080'", repr(url))
    for name, value in fields.items():
        script, count = re.subn(rf"('{name}'\s*=>\s*)'[^']*'", rf"\g<1>'{value}'", script)
        assert count == 1, name
    for name, number in numbers.items():
        script, count = re.subn(rf"('{name}'\s*=>\s*)\d+", rf"\g<1>{number}", script)
        if count == 0:  # not in the example: add it to the fields
            script = script.replace("    ];", f"        '{name}' => {number},\n    ];", 1)
    path = tmp_path / "example.php"
    path.write_text(script)
    result = subprocess.run(["php", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # var_dump($response) prints: string(N) "<json>"
    dumped = re.fullmatch(r'string\(\d+\) "(.*)"\s*', result.stdout, re.DOTALL)
    assert dumped, result.stdout
    body: dict[str, Any] = json.loads(dumped.group(1))
    return body


@dataclass
class CallbackReceiver:
    """A callback receiver on loopback that acknowledges every record with a 200."""

    url: str
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    """(time.monotonic() at arrival, the record), in arrival order."""

    def records(self) -> list[dict[str, Any]]:
        return [record for _, record in list(self.received)]


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    received: list[tuple[float, dict[str, Any]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append((time.monotonic(), json.loads(self.rfile.read(length))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: tests read the server's log, not this one."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="callback-receiver", daemon=True)
    thread.start()
    yield CallbackReceiver(f"http://127.0.0.1:{server.server_address[1]}/cb", received)
    server.shutdown()
    server.server_close()
