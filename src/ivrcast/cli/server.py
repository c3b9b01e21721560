"""The server's commands: `migrate`, `serve` (the API, with the dialer in a child
process) and `dialer` (the dialer alone)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from ivrcast.cli.common import (
    ConfigOption,
    console,
    open_database,
    settings_from,
)
from ivrcast.clock import SystemClock
from ivrcast.logs import configure_logging

MAX_DIALERS = 64  # dialer children of one `serve`; one per core is the useful number


def migrate(config: ConfigOption = None) -> None:
    """Bring the database schema up to date."""
    db = open_database(settings_from(config))
    console.print(f"schema up to date: {db.engine.url!r}")
    db.dispose()


def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="Listen address (default: [server] host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port; 0 picks a free one.")] = None,
    dialer: Annotated[bool, typer.Option(help="Start the dialer process beside the API.")] = True,
    dialers: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_DIALERS,
            help="Dialer processes to start (one per core), each a node of its own.",
        ),
    ] = 1,
    demo_account: Annotated[
        bool, typer.Option(help="On an empty database, create a demo account and voice.")
    ] = False,
) -> None:
    """Migrate, then serve the API (and start the dialer in its own process)."""
    import uvicorn

    from ivrcast.api.http_server import server_config
    from ivrcast.app import create_app
    from ivrcast.demo_account import ensure_demo_account

    settings = settings_from(config)
    configure_logging(settings.logging)
    if dialer and dialers > 1 and settings.dialer.sip_port != 0:
        raise typer.BadParameter(
            f"{dialers} dialers cannot all listen on [dialer] sip_port = "
            f"{settings.dialer.sip_port}: set it to 0 (a free port each)",
            param_hint="--dialers",
        )
    db = open_database(settings)
    if demo_account:
        created = ensure_demo_account(settings, db, now=SystemClock().now())
        if created is not None:
            console.print(
                "[bold]demo account created[/bold] (also in "
                f"{settings.data_dir}/demo-account.txt)\n"
                f"  appid     = {created.appid}\n  accesskey = {created.accesskey}\n"
                f"  voice     = {created.voice}"
            )
    db.dispose()
    listener = socket.create_server(
        (host or settings.server.host, settings.server.port if port is None else port)
    )
    bound_host, bound_port = listener.getsockname()[:2]
    supervisors = [
        DialerSupervisor(config or settings.config_path, name=f"dialer-supervisor-{n}")
        for n in range(dialers if dialer else 0)
    ]
    for supervisor in supervisors:
        supervisor.start()
    console.print(f"ivrcast listening on http://{bound_host}:{bound_port}", highlight=False)
    server = uvicorn.Server(server_config(create_app(settings), settings))
    # uvicorn turns SIGTERM into a graceful shutdown and then raises it again with the
    # handler found at start; that handler must end this process through `finally`, or
    # the dialer child would outlive it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server.run(sockets=[listener])
    finally:
        # Every child stops at once, each within the grace.
        for supervisor in supervisors:
            supervisor.request_stop()
        for supervisor in supervisors:
            supervisor.wait_stopped(grace=settings.dialer.shutdown_grace + 5)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class DialerSupervisor:
    """Runs `python -m ivrcast.dialer` as a child and restarts it if it dies.

    The dialer and its media clock live in their own process so that API work never
    delays RTP (design section 6).

    The child must not outlive this process, however it ends: after a kill -9 nothing
    here runs, and a dialer left behind would keep dialing beside the next one. So each
    child gets the read end of a pipe whose write end only this process holds (and never
    writes to): when this process dies the kernel closes it, the child reads end-of-file
    and stops gracefully (`dialer.service.watch_parent`). A pipe rather than
    PR_SET_PDEATHSIG, which fires when the *thread* that started the child exits (the
    watcher thread restarts children) and exists on Linux only.
    """

    def __init__(self, config: Path | None, *, name: str = "dialer-supervisor") -> None:
        self.command = [sys.executable, "-m", "ivrcast.dialer"]
        if config is not None:
            self.command += ["--config", str(config)]
        self.process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None  # the write end of the current child's pipe
        self.stopping = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name=name, daemon=True)

    def start(self) -> None:
        self.process = self._spawn()
        self.watcher.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        read_end, write_end = os.pipe()  # both non-inheritable: no other child gets them
        try:
            process = subprocess.Popen(
                [*self.command, "--parent-pipe", str(read_end)], pass_fds=(read_end,)
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._close_lifeline()  # the previous child's, if any: it has exited
        self._lifeline = write_end
        return process

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    def _watch(self) -> None:
        while not self.stopping.is_set():
            assert self.process is not None
            code = self.process.wait()
            if self.stopping.is_set():
                return
            logging.getLogger(__name__).error("dialer exited with %s; restarting", code)
            if self.stopping.wait(1.0):
                return
            self.process = self._spawn()

    def request_stop(self) -> None:
        """SIGTERM the child (it stops gracefully); it is not restarted."""
        self.stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, *, grace: float) -> None:
        """Wait up to `grace` seconds for the child to exit, then kill it."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_lifeline()


def run_dialer(config: ConfigOption = None) -> None:
    """Run the dialer alone (claims queued calls and dials them)."""
    from ivrcast.dialer.service import main

    settings = settings_from(config)
    configure_logging(settings.logging)
    open_database(settings).dispose()
    main(settings)
