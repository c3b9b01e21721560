"""Helpers of the browser tests: the server they drive, signing in, screenshots.

Screenshots go to `test-artifacts/browser/` (kept by CI, ignored by git); the README's
pictures in `docs/img/` are refreshed with `IVRCAST_DOC_IMAGES=1 make test`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, expect

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DOC_IMAGES = ROOT / "docs" / "img"
IVRCAST = [sys.executable, "-m", "ivrcast"]
OPERATOR_TOKEN = "browser-operator-token"
MAX_NUMBERS = 20
"""The server's per-submission limit here: small, so that the send page's splitting of a
CSV into several submissions is exercised with a few dozen numbers."""

CONFIG = f"""
[security]
operator_token = "{OPERATOR_TOKEN}"
[limits]
max_numbers = {MAX_NUMBERS}
# The demo carrier dials at any hour, whatever the time of day the tests run at.
[countries.id]
window = "00:00-24:00"
[countries.in]
window = "00:00-24:00"
"""


@dataclass
class Server:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*IVRCAST, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def start_server(data_dir: Path) -> Server:
    """`ivrcast serve` on a free port, in a process group of its own (see `stop_server`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "ivrcast.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "IVRCAST_DATA_DIR": str(data_dir), "IVRCAST_CONFIG": str(config)}
    env.pop("IVRCAST_DATABASE_URL", None)
    log = data_dir / "server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*IVRCAST, "serve", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return Server(found.group(1), env, process, log)
        time.sleep(0.05)  # polling a condition (the log line), with a deadline
    stop_server(Server("", env, process, log))
    raise AssertionError("the server did not start:\n" + log.read_text(errors="replace"))


def sign_in(page: Page, appid: str, accesskey: str) -> None:
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/signin\?next="))
    page.get_by_label("appid").fill(appid)
    page.get_by_label("accesskey").fill(accesskey)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def screenshot(page: Page, name: str, *, doc: bool = False) -> None:
    """Keep a screenshot as a test artifact; with `doc`, and `IVRCAST_DOC_IMAGES=1` in the
    environment, also refresh the README's picture of it (not on every run, which would
    leave the work tree changed after each test run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    if doc and os.environ.get("IVRCAST_DOC_IMAGES") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=DOC_IMAGES / f"{name}.png", full_page=False)


def stop_server(server: Server) -> None:
    """Stop the server and its dialer child. The whole process group is signalled: on
    SIGTERM, `serve` can exit before it stops its dialer, which would outlive the test."""
    group = os.getpgid(server.process.pid)
    os.killpg(group, signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        server.process.wait()
    deadline = time.monotonic() + 30
    with contextlib.suppress(ProcessLookupError):
        while time.monotonic() < deadline:
            os.killpg(group, 0)  # raises once the group's last process has exited
            time.sleep(0.1)  # polling a condition (the dialer's exit), with a deadline
        os.killpg(group, signal.SIGKILL)
