"""CSV export of calls: memory stays flat however many rows are exported.

Fills a fresh SQLite database with 1,000,000 call rows (200 tasks of 5000, written the
way PlayVoice writes them) and a second one of 100,000 rows made the same way, and runs
`ivrcast calls export` of each in a child process that reports its own peak RSS. Flat
memory means the two peaks are about equal while the output grows tenfold.

Run: `.venv/bin/python bench/export.py [--rows 1000000]`. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from ivrcast.store.accounts import create_account
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head
from ivrcast.store.tasks import NewTask, create_task
from ivrcast.store.voices import insert_voice

PER_TASK = 5000
CHILD = """
import resource, sys
from ivrcast.cli import main
sys.argv = ["ivrcast", "calls", "export", "--output", sys.argv[1]]
try:
    main()
except SystemExit:
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def fill(data_dir: Path, rows: int) -> None:
    db = Database(f"sqlite:///{data_dir / 'ivrcast.db'}")
    upgrade_to_head(db)
    now = datetime.now(UTC)
    with db.write() as conn:
        account = create_account(conn, appid="bench", accesskey_hash="x", now=now)
        voice = insert_voice(
            conn, account_id=account.id, name="v", source_url=None, source_format="wav",
            source_bytes=0, duration_ms=1000, pcmu=b"", pcma=b"", now=now,
        )  # fmt: skip
    for batch in range(rows // PER_TASK):
        numbers = [f"+62812{batch:03d}{i:05d}" for i in range(PER_TASK)]
        new = NewTask(
            account_id=account.id, nationcode="id", voice_id=voice.id, numbers=numbers,
            userkey=False, todayonly=1, waittime=30, conntime=30, disnumber=None,
            chengshudu="", customuuid="", duplicates=0, invalid=0, local_day=date(2026, 11, 26),
        )  # fmt: skip
        with db.write() as conn:
            create_task(conn, new, now=now)
    db.dispose()


def export(data_dir: Path) -> tuple[float, int, int]:
    output = data_dir / "calls.csv"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(output)],
        env={"IVRCAST_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    peak_kib = int(result.stderr.strip().splitlines()[-1])
    with output.open("rb") as file:
        lines = sum(1 for _ in file)
    return elapsed, peak_kib, lines - 1


def main(rows: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="ivrcast-export-"))
    for count in (rows // 10, rows):
        data_dir = root / str(count)
        data_dir.mkdir()
        fill(data_dir, count)
        elapsed, peak_kib, exported = export(data_dir)
        print(
            f"{exported:>9,} rows exported in {elapsed:5.1f} s "
            f"({exported / elapsed:,.0f} rows/s), child peak RSS {peak_kib / 1024:.1f} MiB"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    main(parser.parse_args().rows)
