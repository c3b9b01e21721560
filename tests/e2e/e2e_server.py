"""The whole service as a user runs it: the `ivrcast` command in its own process."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
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
