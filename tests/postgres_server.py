"""Where the tests find PostgreSQL: the one configured, the local server, or one of their own.

`make test` must run on a fresh Debian machine that has the `postgresql` package but no
server running (or one it may not use). `postgres_admin_url()` picks, in order:

1. `IVRCAST_TEST_POSTGRES` (an admin URL), when set to anything but `start`;
2. the server at 127.0.0.1:5432, when it answers;
3. a throwaway cluster (`throwaway_cluster`): `initdb` into a temporary folder, started
   with `pg_ctl` on a free loopback port and a unix socket in that folder, stopped and
   deleted at the end of the run. `IVRCAST_TEST_POSTGRES=start` forces this path.

PostgreSQL refuses to run as root, so under root the cluster belongs to, and runs as,
the `postgres` user the Debian package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

LOCAL_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ENV = "IVRCAST_TEST_POSTGRES"
FORCE_THROWAWAY = "start"


def answers(url: str) -> bool:
    """Whether a server at `url` accepts a connection now."""
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _bin_dir() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps them off PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError(
            "no PostgreSQL server answers at 127.0.0.1:5432 and initdb is not installed: "
            "install Debian's postgresql package or set IVRCAST_TEST_POSTGRES"
        )
    return Path(initdb).parent


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _as_owner(folder: Path) -> Callable[[], None] | None:
    """Under root: hand `folder` to `postgres` and return a pre-exec that becomes it."""
    if os.geteuid() != 0:
        return None
    owner = pwd.getpwnam("postgres")
    os.chown(folder, owner.pw_uid, owner.pw_gid)

    def become_postgres() -> None:
        os.setgid(owner.pw_gid)
        os.setuid(owner.pw_uid)

    return become_postgres


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A PostgreSQL cluster of its own for this run; yields its admin URL."""
    programs = _bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="ivrcast-pg-"))
    data = folder / "data"
    become = _as_owner(folder)
    port = _free_tcp_port()

    def run(*args: str) -> None:
        done = subprocess.run(
            args, preexec_fn=become, capture_output=True, text=True, timeout=120, cwd=folder
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    try:
        run(
            str(programs / "initdb"), "-D", str(data), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        # Durability is not what is tested here: no fsync makes the run much faster.
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        run(
            str(programs / "pg_ctl"), "start", "-D", str(data), "-w", "-t", "60",
            "-l", str(folder / "server.log"), "-o", options,
        )  # fmt: skip
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(str(programs / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_admin_url(environ: dict[str, str]) -> Iterator[tuple[str, str]]:
    """The admin URL the tests use and where it came from (for the run's summary)."""
    configured = environ.get(ENV, "")
    if configured and configured != FORCE_THROWAWAY:
        yield configured, f"{ENV}"
    elif configured != FORCE_THROWAWAY and answers(LOCAL_ADMIN):
        yield LOCAL_ADMIN, "the server at 127.0.0.1:5432"
    else:
        with throwaway_cluster() as url:
            yield url, f"a throwaway cluster at {url}"
