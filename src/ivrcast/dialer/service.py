"""The dialer process: engine, demo carrier, recovery, the loop, and a graceful stop.

`run_dialer` is the whole service as a coroutine (tests run it in-process); `main` runs
it until SIGTERM or SIGINT, or until the process that started it is gone (`watch_parent`).
The schema must be migrated already (the caller's job).

Stopping: claim nothing more; calls waiting for a channel or pacer slot go back to
`queued` (their INVITE never left); calls in progress get `dialer.shutdown_grace` seconds
to end by themselves; then the engine ends the rest (BYE, CANCEL) and their outcomes are
recorded like any other before the node is marked stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from ivrcast.callbacks.record import record_builder
from ivrcast.clock import Clock, SystemClock
from ivrcast.config import Settings, TrunkSettings
from ivrcast.credentials import load_secret_key
from ivrcast.demo import DemoCarrier
from ivrcast.dialer.database import DatabaseThread
from ivrcast.dialer.limits import TrunkState
from ivrcast.dialer.loop import Dialer
from ivrcast.dialer.metrics import SNAPSHOT_INTERVAL, DialerMetrics
from ivrcast.dialer.node_report import NodeReport
from ivrcast.dialer.recovery import Recovery, recover
from ivrcast.dialer.routing import Router
from ivrcast.numbers import NATIONS
from ivrcast.private_files import private_dir
from ivrcast.recordings import sweep_recordings
from ivrcast.sip import Engine, Timers
from ivrcast.store import nodes
from ivrcast.store.engine import Connection, Database
from ivrcast.store.records import RecordBuilder

logger = logging.getLogger(__name__)

DEMO_TRUNK = "demo"
DEMO_CHANNELS = 50
DEMO_CPS = 20.0
DEMO_CALLER_ID = "10000"
SWEEP_SECONDS = 3600.0  # between two sweeps of old recordings


def new_node_id() -> str:
    """Unique per process start: a restarted dialer is a new node, and recovery ends the
    calls of the old one."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


def demo_trunk(address: tuple[str, int], countries: list[str]) -> TrunkSettings:
    return TrunkSettings(
        name=DEMO_TRUNK,
        countries=countries,
        proxy=f"{address[0]}:{address[1]}",
        callerids=[DEMO_CALLER_ID],
        max_channels=DEMO_CHANNELS,
        max_cps=DEMO_CPS,
    )


def engine_for(settings: Settings, clock: Clock | None = None) -> Engine:
    """The call engine as `[dialer]` and `[sip]` configure it. It takes the dialer's
    clock, so a call's times and the retry rounds computed from them share one clock."""
    return Engine(
        clock=clock,
        bind_host=settings.dialer.sip_host,
        bind_port=settings.dialer.sip_port,
        rtp_port_range=settings.sip.rtp_ports,
        advertised_host=settings.sip.advertised_host,
        no_rtp_timeout=settings.sip.no_rtp_timeout or None,
        timers=Timers(t1=settings.sip.t1),
    )


def wants_demo(settings: Settings) -> bool:
    return settings.demo == "on" or (settings.demo == "auto" and not settings.trunks)


def run_dialer(
    settings: Settings,
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[], None] | None = None,
) -> Awaitable[None]:
    """The dialer until `stop` is set (never, when not given), then a graceful stop."""
    return _Service(settings, clock or SystemClock()).run(stop or asyncio.Event(), ready)


class _Service:
    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.node_id = new_node_id()
        self.hostname = socket.gethostname()
        self.build_record: RecordBuilder = record_builder(settings, load_secret_key(settings))
        self.metrics = DialerMetrics(self.node_id)
        self.trunks: list[TrunkState] = []
        self.dialer: Dialer | None = None
        self._report = NodeReport()

    async def run(self, stop: asyncio.Event, ready: Callable[[], None] | None) -> None:
        settings = self.settings
        db = Database(settings.database_url)
        dbt = DatabaseThread(db)
        demo: DemoCarrier | None = None
        engine = engine_for(settings, self.clock)
        background: list[asyncio.Task[None]] = []
        try:
            trunk_settings = list(settings.trunks)
            if wants_demo(settings):
                demo = DemoCarrier(host="127.0.0.1")
                await demo.start()
                served = {c for t in trunk_settings for c in t.countries}
                trunk_settings.append(demo_trunk(demo.address, sorted(set(NATIONS) - served)))
            # Before any call: a recording call must find its folder (0700, private).
            private_dir(settings.recordings_dir)
            recovery = await dbt.run(self._start_node, dbt)
            self.trunks = [TrunkState.create(t, 1 / recovery.live_nodes) for t in trunk_settings]
            await engine.start()
            dialer = self.dialer = Dialer(
                settings,
                dbt,
                engine,
                Router(self.trunks),
                node_id=self.node_id,
                clock=self.clock,
                build_record=self.build_record,
                metrics=self.metrics,
            )
            failed = asyncio.Event()
            for name, coro in (
                ("dialer-writer", dialer.writer.run()),
                ("dialer-heartbeat", self._heartbeat(dbt)),
                ("dialer-metrics", self._write_metrics()),
                ("dialer-recordings", self._sweep_recordings()),
            ):
                background.append(_supervised(name, coro, failed))
            claiming = _supervised("dialer-claim", dialer.run(), failed)
            logger.info(
                "dialer %s running: trunks %s",
                self.node_id,
                ", ".join(t.name for t in self.trunks) or "none",
                extra={"event": "dialer.started", "node": self.node_id},
            )
            if ready is not None:
                ready()
            await _first(stop.wait(), failed.wait())
            await self._stop(dialer, engine, claiming)
            await dbt.run(self._stop_node, dbt)
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await engine.stop()
            if demo is not None:
                await demo.stop()
            self.metrics.remove_snapshot(settings.data_dir)
            dbt.close()
            db.dispose()

    async def _stop(self, dialer: Dialer, engine: Engine, claiming: asyncio.Task[None]) -> None:
        logger.info(
            "dialer stopping: %d calls in progress",
            dialer.active_jobs,
            extra={"event": "dialer.stopping", "node": self.node_id},
        )
        await dialer.stop_claiming()
        with contextlib.suppress(asyncio.CancelledError):
            await claiming
        await dialer.wait_jobs(self.settings.dialer.shutdown_grace)
        await engine.stop()  # ends what is left; each call's outcome returns to its job
        await dialer.wait_jobs(None)
        released = await dialer.release_unsent()
        await dialer.writer.drain()
        logger.info(
            "dialer stopped; %d claimed calls that never left went back to the queue",
            released,
            extra={"event": "dialer.stopped", "node": self.node_id},
        )

    def _start_node(self, dbt: DatabaseThread) -> Recovery:
        now = self.clock.now()
        with dbt.db.write() as conn:
            nodes.register_node(
                conn, node_id=self.node_id, hostname=self.hostname, pid=os.getpid(), now=now
            )
            return self._recover(conn, now)

    def _beat(self, dbt: DatabaseThread, report: str) -> Recovery:
        now = self.clock.now()
        with dbt.db.write() as conn:
            nodes.heartbeat(conn, node_id=self.node_id, now=now, report=report)
            return self._recover(conn, now)

    def _recover(self, conn: Connection, now: datetime) -> Recovery:
        """Interrupt the calls of dead nodes (heartbeat stale, or a process of this host
        that is gone), in the transaction that records this node alive."""
        return recover(
            conn,
            node_id=self.node_id,
            hostname=self.hostname,
            heartbeat_seconds=self.settings.dialer.heartbeat_seconds,
            build_record=self.build_record,
            now=now,
        )

    def _stop_node(self, dbt: DatabaseThread) -> None:
        with dbt.db.write() as conn:
            nodes.stop_node(conn, node_id=self.node_id, now=self.clock.now())

    async def _heartbeat(self, dbt: DatabaseThread) -> None:
        """Beat, end dead nodes' calls, and re-share the trunks among the live nodes."""
        live = 0
        while True:
            await asyncio.sleep(self.settings.dialer.heartbeat_seconds)
            try:
                recovery = await dbt.run(self._beat, dbt, self._report_text())
            except Exception:
                logger.exception("heartbeat failed", extra={"event": "dialer.heartbeat_failed"})
                continue
            if recovery.live_nodes != live:
                live = recovery.live_nodes
                for trunk in self.trunks:
                    trunk.set_share(1 / live)

    async def _sweep_recordings(self) -> None:
        """Delete recordings older than `[recordings] keep_days`, now and then hourly.
        Every node may sweep a shared folder; a file one node deleted the others skip."""
        recordings = self.settings.recordings
        while True:
            try:
                await asyncio.to_thread(
                    sweep_recordings, self.settings.recordings_dir, keep_days=recordings.keep_days
                )
            except OSError as exc:
                logger.warning(
                    "cannot sweep recordings: %s", exc, extra={"event": "recordings.sweep_failed"}
                )
            await asyncio.sleep(SWEEP_SECONDS)

    def _report_text(self) -> str:
        """This node's heartbeat report (`dialer.node_report`), as stored on its row."""
        finished = 0 if self.dialer is None else self.dialer.finished
        loop = asyncio.get_running_loop()
        report = self._report.build(self.trunks, finished=finished, now=loop.time())
        return json.dumps(report, separators=(",", ":"))

    async def _write_metrics(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.metrics.write_snapshot, self.settings.data_dir)
            except OSError as exc:
                logger.warning(
                    "cannot write metrics: %s", exc, extra={"event": "dialer.metrics_failed"}
                )
            await asyncio.sleep(SNAPSHOT_INTERVAL)


def _supervised(
    name: str, coro: Coroutine[Any, Any, None], failed: asyncio.Event
) -> asyncio.Task[None]:
    """A named background task; if it dies, the service stops rather than limp on."""
    task = asyncio.create_task(coro, name=name)

    def done(t: asyncio.Task[None]) -> None:
        if not t.cancelled() and t.exception() is not None:
            logger.error(
                "%s died", name, exc_info=t.exception(), extra={"event": "dialer.task_died"}
            )
            failed.set()

    task.add_done_callback(done)
    return task


async def _first(*aws: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def watch_parent(loop: asyncio.AbstractEventLoop, pipe: int, on_gone: Callable[[], None]) -> None:
    """Call `on_gone` once `pipe` (the read end of a pipe whose write end only the
    parent holds) reads end-of-file: the parent has exited, whatever killed it."""
    os.set_blocking(pipe, False)

    def readable() -> None:
        try:
            if os.read(pipe, 512):
                return  # the parent never writes; nothing to do with bytes
        except BlockingIOError:
            return
        except OSError:
            pass  # as good as end-of-file: the parent's end is unusable
        loop.remove_reader(pipe)
        os.close(pipe)
        logger.warning(
            "the process that started this dialer is gone; stopping",
            extra={"event": "dialer.parent_gone"},
        )
        on_gone()

    loop.add_reader(pipe, readable)


def main(settings: Settings, *, parent_pipe: int | None = None) -> None:
    """Run the dialer until SIGTERM or SIGINT, or until `parent_pipe` reads end-of-file,
    then stop gracefully."""

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if parent_pipe is not None:
            watch_parent(loop, parent_pipe, stop.set)
        await run_dialer(settings, stop=stop)

    asyncio.run(_main())
