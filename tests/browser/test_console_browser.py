"""A customer's whole day in the console, in Chromium, against `ivrcast serve` and its
demo carrier (the number's last digit decides the call: 1 answers, 4 answers and presses
1, 5 is busy, 6 never answers, 7 is 404, 9 answers and hangs up; docs/telephony.md)."""

from __future__ import annotations

import csv
import re

import pytest
from browser_console import MAX_NUMBERS, Customer, create_customer, screenshot, sign_in
from playwright.sync_api import Browser, FilePayload, Page, expect

from ivrcast.demo_account import demo_tone
from service_process import RunningServer as Server

CALL_WAIT = 60_000
"""Milliseconds to wait for calls to end: a few seconds each, many at once."""

NUMBERS = ["081234567801", "081234567804", "081234567805", "081234567806", "081234567807"]


@pytest.fixture
def alice(server: Server) -> Customer:
    """The journey's customer: records go to a closed port, so deliveries fail and can be
    replayed."""
    return create_customer(
        server, "alice", "--countries", "id,in", "--callback-url", "http://127.0.0.1:9/records"
    )


def upload_voice_by_drag_and_drop(page: Page, filename: str) -> None:
    page.get_by_role("link", name="Voices").click()
    transfer = page.evaluate_handle(
        """([bytes, name]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "audio/wav"}));
            return transfer;
        }""",
        [list(demo_tone(seconds=1.0)), filename],
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    expect(page.get_by_label("Name (the voicefile of the API)")).to_have_value(
        filename.removesuffix(".wav")
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_have_text("The voice was uploaded and transcoded.")


def send(page: Page, nation: str, voice: str, numbers: list[str], *, userkey: bool = False) -> None:
    page.get_by_role("link", name="Send", exact=True).click()
    page.get_by_label("Nation", exact=True).select_option(nation)
    page.get_by_label("Voice", exact=True).select_option(voice)
    page.get_by_label("Paste numbers").fill("\n".join(numbers))
    page.get_by_label("Ring for at most (seconds)").fill("3")
    if userkey:
        page.get_by_label("Collect a key press").check()
    page.get_by_role("button", name="Send", exact=True).click()


def wait_for_the_task_to_end(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"/console/tasks/[0-9a-f]{32}$"))
    expect(page.locator('#task-progress [data-field="percent"]')).to_have_text(
        "100", timeout=CALL_WAIT
    )
    expect(page.locator("#task-bar")).to_have_attribute("value", re.compile(r"^[1-9]"))


def test_a_customer_broadcasts_and_follows_every_call(page: Page, alice: Customer) -> None:
    page.goto("/console/signin")
    screenshot(page, "signin")
    sign_in(page, alice.appid, alice.accesskey)

    upload_voice_by_drag_and_drop(page, "greeting.wav")
    row = page.get_by_role("row", name=re.compile(r"^greeting "))
    expect(row).to_contain_text("1.0 s")
    # The browser decodes the transcoded audio it is offered (8 kHz, as callers hear it).
    duration = row.locator("audio").evaluate(
        """audio => new Promise((resolve, reject) => {
            audio.onloadedmetadata = () => resolve(audio.duration);
            audio.onerror = () => reject(new Error("the audio did not load"));
            audio.preload = "auto";
            audio.load();
        })"""
    )
    assert 0.9 < duration < 1.2
    screenshot(page, "voices")

    send(page, "id", "greeting", NUMBERS, userkey=True)
    wait_for_the_task_to_end(page)
    task_id = page.url.rsplit("/", 1)[1]
    calls_table = page.locator("#task-calls")
    for outcome in ("completed", "busy", "no answer", "failed"):
        expect(calls_table).to_contain_text(outcome, timeout=CALL_WAIT)
    expect(page.locator("#task-progress li.state-completed")).to_have_text(
        re.compile(r"completed\s+2")
    )
    screenshot(page, "task", doc=True)

    page.get_by_role("link", name="Call to +6281234567804: timeline").click()
    timeline = page.locator("#timeline")
    for moment in (
        "Queued",
        "Dialing",
        "INVITE sent",
        "Ringing",
        "Answered",
        "Keys pressed",
        "Ended: completed",
        "Call record written",
        "Callback queued",
    ):
        expect(timeline).to_contain_text(moment)
    expect(timeline.locator(".event", has_text="Keys pressed")).to_contain_text("1")
    screenshot(page, "call")

    page.goto(f"/console/calls?task={task_id}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export these calls as CSV").click()
    with open(download.value.path(), newline="") as exported:
        rows = list(csv.DictReader(exported))
    assert sorted(r["number"] for r in rows) == sorted("+62" + n[1:] for n in NUMBERS)
    assert {r["status"] for r in rows} == {"completed", "busy", "no_answer", "failed"}
    assert {r["task_id"] for r in rows} == {task_id}

    # A CSV longer than the server's per-request limit goes as several submissions.
    page.get_by_role("link", name="Send", exact=True).click()
    page.get_by_label("Nation", exact=True).select_option("id")
    page.get_by_label("Ring for at most (seconds)").fill("3")
    lines = ["name,phone"] + [f"customer {i},08123456{i:04d}" for i in range(2 * MAX_NUMBERS + 5)]
    csv_file: FilePayload = {
        "name": "list.csv",
        "mimeType": "text/csv",
        "buffer": "\n".join(lines).encode(),
    }
    page.get_by_label("Or a CSV file of any size").set_input_files(files=[csv_file])
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#send-status")).to_have_text(
        f"Done: {2 * MAX_NUMBERS + 5} numbers sent in 3 task(s)."
    )
    expect(page.locator("#send-results li")).to_have_count(3)
    expect(page.get_by_role("button", name="Retry the remaining parts")).to_be_hidden()
    expect(page.locator("#send-bar")).to_have_attribute("value", str(2 * MAX_NUMBERS + 5))
    screenshot(page, "send")

    send(page, "in", "greeting", ["9812345601", "9812345604", "9812345605"])
    wait_for_the_task_to_end(page)

    # Records go to a closed port here: every delivery fails, and can be sent again.
    page.get_by_role("link", name="Callbacks").click()
    expect(page.get_by_role("link", name=re.compile(r"^failing [1-9]"))).to_be_visible(
        timeout=CALL_WAIT
    )
    page.get_by_role("button", name=re.compile("Replay failing deliveries")).click()
    expect(page.get_by_role("status")).to_contain_text("queued again")
    screenshot(page, "callbacks")

    page.get_by_role("link", name="Overview").click()
    total = len(NUMBERS) + 2 * MAX_NUMBERS + 5 + 3
    expect(page.locator('[data-figure="ended"]')).to_have_text(str(total), timeout=CALL_WAIT)
    expect(page.locator('[data-figure="active"]')).to_have_text("0")
    expect(page.locator('[data-figure="queued"]')).to_have_text("0")
    expect(page.locator("#countries tbody tr")).to_have_count(2)
    assert page.locator("#chart rect").count() > 0
    expect(page.locator("#chart-summary")).to_contain_text(f"{total} calls ended")
    screenshot(page, "overview", doc=True)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto("/console/tasks")
    expect(page).to_have_url(re.compile(r"/console/signin\?next="))


def test_one_account_never_sees_another_s_data(
    page: Page, browser: Browser, server: Server
) -> None:
    owner = create_customer(server, "carol", "--countries", "id")
    other_customer = create_customer(server, "dave")
    sign_in(page, owner.appid, owner.accesskey)
    upload_voice_by_drag_and_drop(page, "private-voice.wav")
    audio_url = (
        page.get_by_role("row", name=re.compile(r"^private-voice "))
        .locator("audio")
        .get_attribute("src")
    )
    send(page, "id", "private-voice", ["081299999901"])
    expect(page).to_have_url(re.compile(r"/console/tasks/[0-9a-f]{32}$"))
    task_url = page.url.removeprefix(server.url)
    call_url = page.get_by_role("link", name="Call to +6281299999901: timeline").get_attribute(
        "href"
    )
    assert audio_url is not None
    assert call_url is not None

    bob = browser.new_context(base_url=server.url)
    try:
        other = bob.new_page()
        sign_in(other, other_customer.appid, other_customer.accesskey)
        for url in (task_url, call_url):
            response = other.goto(url)
            assert response is not None
            assert response.status == 404, url
            expect(other.get_by_role("heading", name="Not found")).to_be_visible()
        for url in (task_url + "/events", audio_url):
            assert other.request.get(url).status == 404, url
        other.goto("/console/tasks")
        expect(other.locator("main")).not_to_contain_text(task_url.rsplit("/", 1)[1][:12])
        other.goto("/console/voices")
        expect(other.locator("main")).not_to_contain_text("private-voice")
        other.goto("/console/calls?number=%2B6281299999901")
        expect(other.locator("main")).to_contain_text("No calls.")
        assert other.request.get("/console/calls.csv").text().count("\n") == 1
    finally:
        bob.close()


def test_the_console_is_usable_by_keyboard(page: Page, server: Server) -> None:
    customer = create_customer(server, "erin")
    page.goto("/console/signin")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("appid")).to_be_focused()
    page.keyboard.type(customer.appid)
    page.keyboard.press("Tab")
    page.keyboard.type(customer.accesskey)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
