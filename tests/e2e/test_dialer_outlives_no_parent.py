"""kill -9 of `ivrcast serve` with calls in progress: its dialer child must not keep
dialing on its own.

The child learns from a pipe that the parent is gone (end-of-file, whatever the signal)
and stops as a SIGTERM would stop it: it ends the calls in progress (BYE) and records
them, then exits. The trunk is the demo carrier, which answers numbers ending in 0 and
listens until we hang up; the voice is long, so the calls are up when `serve` dies.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "interop" / "dialer"))

from dialer_helpers import call_rows, id_numbers, record_counts, submit, tone
from sqlalchemy import select

from factories import add_account, add_voice
from ivrcast.store.engine import Database
from ivrcast.store.tables import nodes
from service_process import start_server
from waiting import wait_for_sync

CALLS = 3
CONFIG = """\
database_url = "{database_url}"

[dialer]
poll_interval = 0.05
shutdown_grace = 0.5

[countries.id]
window = "00:00-24:00"
"""


def seed_long_voice(db: Database) -> tuple[int, int]:
    """An account and a 60 s voice: a call lasts as long as we let it."""
    now = datetime.now(UTC)
    pcmu, pcma = tone(60.0)
    with db.write() as conn:
        account = add_account(conn, now=now)
        voice_id = add_voice(conn, account.id, now=now, name="long", pcmu=pcmu, pcma=pcma)
    return account.id, voice_id


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


def test_the_dialer_ends_its_calls_and_exits_when_serve_is_killed(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    account_id, voice_id = seed_long_voice(database)
    task_id = submit(
        database, account_id, voice_id, id_numbers(CALLS, last_digit="0"), conntime=120
    )
    config = tmp_path / "ivrcast.toml"
    config.write_text(CONFIG.format(database_url=database_url))
    server = start_server(tmp_path / "data", config=config)
    group = server.process.pid  # start_server gives the server a session of its own
    try:
        wait_for_sync(
            lambda: [r["status"] for r in call_rows(database, task_id)] == ["answered"] * CALLS,
            "every call to be answered",
            limit=60,
        )
        dialers = children_of(server.process.pid)
        assert len(dialers) == 1, dialers
        (dialer,) = dialers
        assert b"ivrcast.dialer" in Path(f"/proc/{dialer}/cmdline").read_bytes()

        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        wait_for_sync(lambda: has_exited(dialer), f"the orphaned dialer {dialer} to exit", limit=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    log = server.log.read_text()
    assert "the process that started this dialer is gone; stopping" in log, log
    assert f"dialer stopping: {CALLS} calls in progress" in log, log
    rows = call_rows(database, task_id)
    # Ended by us, as a graceful stop ends them, and recorded once each.
    assert [r["status"] for r in rows] == ["completed"] * CALLS, rows
    assert [r["hangup_direction"] for r in rows] == [10040] * CALLS, rows
    assert record_counts(database) == {r["id"]: 1 for r in rows}


def running_node_pids(db: Database) -> set[int]:
    with db.read() as conn:
        rows = conn.execute(select(nodes.c.pid).where(nodes.c.stopped_at.is_(None)))
        return {pid for (pid,) in rows}


def test_serve_with_two_dialers_starts_two_nodes_and_both_stop_when_it_is_killed(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "ivrcast.toml"
    config.write_text(CONFIG.format(database_url=database_url))
    server = start_server(tmp_path / "data", "--dialers", "2", config=config)
    group = server.process.pid
    try:
        wait_for_sync(lambda: len(running_node_pids(database)) == 2, "two dialer nodes", limit=60)
        dialers = children_of(server.process.pid)
        assert sorted(dialers) == sorted(running_node_pids(database))
        for dialer in dialers:
            assert b"--parent-pipe" in Path(f"/proc/{dialer}/cmdline").read_bytes()
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        for dialer in dialers:
            wait_for_sync(
                functools.partial(has_exited, dialer),
                f"the orphaned dialer {dialer} to exit",
                limit=30,
            )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    assert running_node_pids(database) == set()
