"""The console in a real browser: Debian's Chromium, driven by Playwright, against the
real `ivrcast serve` (API, dialer process and demo carrier) in a fresh data folder.

Playwright never downloads a browser here: it launches `/usr/bin/chromium`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_console import ARTIFACTS, CHROMIUM, start_server
from playwright.sync_api import Browser, Page, sync_playwright

from peers import require_executable
from service_process import RunningServer as Server
from service_process import stop_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the suite; each test makes the accounts it uses
    (`browser_console.create_customer`)."""
    running = start_server(tmp_path_factory.mktemp("browser") / "data")
    try:
        yield running
    finally:
        stop_server(running)
        (ARTIFACTS / "server.log").parent.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "server.log").write_bytes(running.log.read_bytes())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Playwright's sync API runs an event loop in this thread while it is open, so it is
    closed after the module: asyncio tests run later in the same session need the thread."""
    require_executable(CHROMIUM, "chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """A fresh browser context (its own cookies), closed after the test so that no live
    stream is left open when the server stops."""
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()
