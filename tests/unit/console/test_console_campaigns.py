"""The console's campaign controls: retry fields on the send page, pause and resume."""

from __future__ import annotations

import httpx
from console_client import Console
from sqlalchemy import select

from ivrcast.store.tables import tasks

JSON = {"accept": "application/json"}


async def send(console: Console, client: httpx.AsyncClient, **fields: str) -> str:
    csrf = await console.csrf(client, "/console/send")
    form = {"nationcode": "id", "voicefile": "welcome", "destnumber": "081234567801", **fields}
    response = await client.post("/console/send", data=form, headers={**JSON, "x-csrf-token": csrf})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["taskid"]
    return task_id


async def test_the_send_page_takes_retry_rounds(console: Console) -> None:
    async with console.signed_in() as client:
        form = await client.get("/console/send")
        task_id = await send(
            console, client, retries="2", retryinterval="15", retryon="busy,failed"
        )
        page = await client.get(f"/console/tasks/{task_id}")
    assert 'name="retries"' in form.text
    with console.db.read() as conn:
        row = conn.execute(select(tasks).where(tasks.c.id == task_id)).one()
    assert (row.retries, row.retry_interval, row.retry_on) == (2, 15, "busy,failed")
    assert "up to 2 more, 15 min apart, on busy, failed" in page.text


async def test_pause_and_resume_buttons(console: Console) -> None:
    async with console.signed_in() as client:
        task_id = await send(console, client)
        page = await client.get(f"/console/tasks/{task_id}")
        assert f"/tasks/{task_id}/pause" in page.text
        csrf = await console.csrf(client, f"/console/tasks/{task_id}")
        forged = await client.post(f"/console/tasks/{task_id}/pause", data={"csrf": "no"})
        paused = await client.post(f"/console/tasks/{task_id}/pause", data={"csrf": csrf})
        paused_page = await client.get(paused.headers["location"])
        again = await client.post(f"/console/tasks/{task_id}/pause", data={"csrf": csrf})
        again_page = await client.get(again.headers["location"])
        with console.db.read() as conn:
            status = conn.execute(select(tasks.c.status)).scalar_one()
        resumed = await client.post(f"/console/tasks/{task_id}/resume", data={"csrf": csrf})
    assert forged.status_code == 403
    assert paused.status_code == 303
    assert status == "paused"
    assert "Task paused" in paused_page.text
    assert f"/tasks/{task_id}/resume" in paused_page.text
    assert "is paused already" in again_page.text
    assert resumed.status_code == 303
    with console.db.read() as conn:
        assert conn.execute(select(tasks.c.status)).scalar_one() == "active"


async def test_the_do_not_call_page_keeps_the_account_s_list(console: Console) -> None:
    async with console.signed_in() as client:
        csrf = await console.csrf(client, "/console/dnc")
        added = await client.post(
            "/console/dnc",
            data={
                "csrf": csrf,
                "nationcode": "id",
                "numbers": "081234567890\n+62 812 3456 7891\nxx",
                "action": "add",
            },
        )
        page = await client.get(added.headers["location"])
        removed = await client.post(
            "/console/dnc",
            data={"csrf": csrf, "nationcode": "id", "numbers": "081234567891", "action": "remove"},
        )
        after = await client.get(removed.headers["location"])
        task_id = await send(console, client, destnumber="081234567890,081234567899")
    assert "2 number(s) added; 1 invalid left out" in page.text
    assert "+6281234567891" in page.text
    assert "1 number(s) removed" in after.text
    assert "+6281234567891" not in after.text
    with console.db.read() as conn:
        assert conn.execute(select(tasks.c.total, tasks.c.suppressed)).one() == (1, 1)
    assert task_id
