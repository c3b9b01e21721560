"""The operator in a real browser: create an account, expire it, and its API calls get 602."""

from __future__ import annotations

import re

import httpx
from browser_console import OPERATOR_TOKEN, screenshot
from playwright.sync_api import Page, expect

from service_process import RunningServer as Server


def sign_in_as_operator(page: Page) -> None:
    page.goto("/console/signin")
    page.get_by_label("Operator token").fill(OPERATOR_TOKEN)
    page.get_by_role("button", name="Sign in as operator").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def task_status_code(server: Server, appid: str, accesskey: str) -> int:
    """The vendor code an API call of the account gets."""
    answer = httpx.post(
        server.url + "/api/yunhu",
        data={
            "service": "App.Sip_Call.TaskStatus",
            "appid": appid,
            "accesskey": accesskey,
            "taskid": "0" * 32,
        },
    ).json()
    code: int = answer["code"]
    return code


def test_the_operator_creates_an_account_then_expires_it(page: Page, server: Server) -> None:
    sign_in_as_operator(page)
    page.get_by_role("link", name="Accounts").click()
    expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
    page.get_by_role("link", name="New account").click()
    page.get_by_label("appid").fill("frank")
    page.get_by_label("Nations").fill("id, in")
    page.get_by_label("Allowed client addresses").fill("127.0.0.1")
    page.get_by_label("Calls at once").fill("25")
    page.get_by_role("button", name="Create the account").click()
    expect(page.get_by_role("heading", name="Account frank")).to_be_visible()
    accesskey = page.locator("#new-accesskey").inner_text()
    screenshot(page, "operator-account-created")
    # Usable at once: an unknown task is a 200 answer with data.status 1, not 601/602/604.
    assert task_status_code(server, "frank", accesskey) == 200

    page.get_by_role("button", name="Expire now").click()
    expect(page.get_by_role("status")).to_contain_text("has expired")
    expect(page.locator("#account-state")).to_contain_text("Expires")
    assert task_status_code(server, "frank", accesskey) == 602

    page.get_by_role("link", name="All accounts").click()
    row = page.get_by_role("row", name=re.compile(r"^frank "))
    expect(row).to_contain_text("expired")
    expect(row).to_contain_text("id, in")
    screenshot(page, "operator-accounts")

    page.get_by_role("link", name="Fleet").click()
    expect(page.get_by_role("heading", name="Dialer nodes")).to_be_visible()
