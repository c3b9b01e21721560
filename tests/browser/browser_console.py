"""Helpers of the browser tests: the server they drive, signing in, screenshots.

Screenshots go to `test-artifacts/browser/` (kept by CI, ignored by git); the README's
pictures in `docs/img/` are refreshed with `IVRCAST_DOC_IMAGES=1 make test`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, expect

from service_process import RunningServer
from service_process import start_server as start_serve

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DOC_IMAGES = ROOT / "docs" / "img"
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


def start_server(data_dir: Path) -> RunningServer:
    """`ivrcast serve` with the browser tests' configuration."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "ivrcast.toml"
    config.write_text(CONFIG)
    return start_serve(data_dir, config=config)


@dataclass(frozen=True)
class Customer:
    appid: str
    accesskey: str


def create_customer(server: RunningServer, appid: str, *options: str) -> Customer:
    """An account made with the CLI, as an operator would. Each test makes its own,
    under names no other test uses, so that no test sees another's voices, tasks or
    deliveries, whatever order the tests run in."""
    accesskey = f"{appid}-key"
    created = server.cli("account", "create", "--appid", appid, "--accesskey", accesskey, *options)
    assert created.returncode == 0, created.stdout + created.stderr
    return Customer(appid, accesskey)


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
