"""Fixtures for the engine's interop tests: a SIPp launcher and engines on loopback."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from engine_helpers import (
    BIND_ATTEMPTS,
    HERE,
    PROCESS_TIMEOUT,
    SIPP,
    SippRun,
    bound_or_exited,
    free_udp_port,
)

from ivrcast.rtp.media import ENVIRONMENT
from ivrcast.rtp.pump import NATIVE
from ivrcast.sip import Engine, Timers
from peers import require_executable
from waiting import wait_for


@pytest.fixture(autouse=True, params=["native", "python"])
def media_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every engine test runs on the native media pump and on the Python streams it
    falls back to (docs/media.md); engines read the choice when they start."""
    backend: str = request.param
    if backend == "native" and not NATIVE:
        pytest.skip("the media pump was not built (no C compiler at install)")
    monkeypatch.setenv(ENVIRONMENT, backend)
    return backend


@pytest.fixture
async def sipp(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[SippRun]]]:
    runs: list[SippRun] = []
    numbers = itertools.count()  # not len(runs): several SIPps may be starting at once

    async def start(
        scenario: str,
        *extra: str,
        keys: dict[str, str] | None = None,
        substitute: dict[str, str] | None = None,
    ) -> SippRun:
        """`keys` become `-key` values; `substitute` replaces text in the scenario
        (SIPp reads a response's status code before it expands keys)."""
        require_executable(SIPP, "sip-tester")
        scenario_dir = tmp_path / f"sipp-{next(numbers)}"
        scenario_dir.mkdir()
        scenario_path = HERE / scenario
        if substitute:
            text = scenario_path.read_text()
            for old, new in substitute.items():
                text = text.replace(old, new)
            scenario_path = scenario_dir / scenario
            scenario_path.write_text(text)
        # Each port was free when chosen, but another process may take it before SIPp
        # binds it; SIPp then exits at once, and is started again on new ports.
        for attempt in range(BIND_ATTEMPTS):
            port = free_udp_port()
            media_port = free_udp_port(even=True)
            workdir = scenario_dir / f"attempt-{attempt}"
            workdir.mkdir()
            args = [
                "-k", "5", str(PROCESS_TIMEOUT), SIPP,
                "-sf", str(scenario_path),
                "-i", "127.0.0.1", "-p", str(port),
                "-mi", "127.0.0.1", "-mp", str(media_port),
                "-m", "1", "-nostdin",
                "-trace_msg", "-message_file", str(workdir / "messages.log"),
                "-trace_err", "-error_file", str(workdir / "errors.log"),
                "-trace_screen", "-screen_file", str(workdir / "screen.log"),
                *extra,
            ]  # fmt: skip
            for key, value in (keys or {}).items():
                args += ["-key", key, value]
            out = (workdir / "stdout.log").open("wb")
            process = await asyncio.create_subprocess_exec(
                "timeout", *args, stdout=out, stderr=asyncio.subprocess.STDOUT, cwd=workdir
            )
            out.close()
            run = SippRun(process, port, media_port, workdir, scenario)
            runs.append(run)
            try:
                await wait_for(
                    functools.partial(bound_or_exited, port, process),
                    "SIPp",
                    limit=30,
                )
            except TimeoutError:
                pytest.fail(f"SIPp did not start\n{run.logs()}")
            if process.returncode is None:
                return run
        pytest.fail(f"SIPp exited at start {BIND_ATTEMPTS} times\n{run.logs()}")

    yield start
    for run in runs:
        if run.process.returncode is None:
            run.process.kill()
            await run.process.wait()


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    # SIPp UAS scenarios send no RTP unless told to, so the no-RTP timer is off here.
    eng = Engine(no_rtp_timeout=None)
    await eng.start()
    yield eng
    await eng.stop()


@pytest.fixture
async def fast_engine() -> AsyncIterator[Engine]:
    """T1 of 20 ms: Timer B fires after 1.28 s instead of 32 s."""
    eng = Engine(no_rtp_timeout=None, timers=Timers(t1=0.02, t2=0.16, t4=0.2))
    await eng.start()
    yield eng
    await eng.stop()
