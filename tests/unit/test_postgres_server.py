"""The tests find PostgreSQL on a machine with no server running: a throwaway cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from postgres_server import FORCE_THROWAWAY, answers

ROOT = Path(__file__).parents[2]


def test_postgres_tests_pass_on_a_throwaway_cluster_when_forced() -> None:
    """IVRCAST_TEST_POSTGRES=start takes the path a fresh machine takes when nothing
    answers at 127.0.0.1:5432 (the machine's own server is left alone)."""
    env = {**os.environ, "IVRCAST_TEST_POSTGRES": FORCE_THROWAWAY}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-m",
            "postgres",
            "tests/unit/store/test_schema.py",
            "tests/unit/store/test_call_rows.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    used = re.search(r"PostgreSQL: a throwaway cluster at (\S+)", done.stdout)
    assert used, done.stdout
    assert re.search(r"\b[1-9]\d* passed", done.stdout), done.stdout
    # Stopped when the run ended.
    assert not answers(used.group(1))
