"""Tasks, sending a broadcast, and that an account sees only its own tasks."""

from __future__ import annotations

from typing import Any

import httpx
from console_client import OPERATOR_TOKEN, Console, csrf_of
from sqlalchemy import select

from ivrcast.store.tables import calls, tasks

JSON = {"accept": "application/json"}


async def send(
    console: Console, client: httpx.AsyncClient, numbers: str, **fields: str
) -> httpx.Response:
    csrf = await console.csrf(client, "/console/send")
    form = {"nationcode": "id", "voicefile": "welcome", "destnumber": numbers, **fields}
    return await client.post("/console/send", data=form, headers={**JSON, "x-csrf-token": csrf})


async def sent_task(console: Console, client: httpx.AsyncClient, numbers: str) -> str:
    response = await send(console, client, numbers)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["taskid"]
    return task_id


async def test_a_broadcast_sent_from_the_console_is_a_task_like_any_other(
    console: Console,
) -> None:
    async with console.signed_in() as client:
        response = await send(
            console,
            client,
            "081234567801，081234567802,081234567801, 12",
            userkey="1",
            requestid="console-abc-1",
        )
        body: dict[str, Any] = response.json()
        again = await send(console, client, "081234567801", requestid="console-abc-1")
        page = await client.get(body["url"])
    assert response.status_code == 200
    assert body["ok"] is True
    assert (body["accepted"], body["duplicates"], len(body["invalid"])) == (2, 1, 1)
    # A retried part (same request id) finds its task instead of dialing twice.
    assert again.json()["taskid"] == body["taskid"]
    with console.db.read() as conn:
        task = conn.execute(select(tasks).where(tasks.c.id == body["taskid"])).one()
    assert (task.account_id, task.userkey, task.nationcode) == (
        console.accounts["alice"],
        True,
        "id",
    )
    assert page.status_code == 200
    assert "+6281234567801" in page.text


async def test_a_refused_broadcast_says_which_field_is_wrong(console: Console) -> None:
    async with console.signed_in() as client:
        too_many = await send(console, client, ",".join(f"0812345{i:05d}" for i in range(5001)))
        no_voice = await send(console, client, "081234567801", voicefile="nope")
        not_allowed = await send(console, client, "0912345678", nationcode="ph")
    assert too_many.status_code == 400
    assert too_many.json()["error"].startswith("destnumber:")
    assert no_voice.status_code == 404
    assert "voicefile" in no_voice.json()["error"]
    # The vendor's 603 (module not licensed), a 403 over HTTP.
    assert not_allowed.status_code == 403
    assert "nationcode" in not_allowed.json()["error"]


async def test_without_javascript_the_form_posts_and_lands_on_the_task(console: Console) -> None:
    async with console.signed_in() as client:
        csrf = await console.csrf(client, "/console/send")
        response = await client.post(
            "/console/send",
            data={
                "csrf": csrf,
                "nationcode": "id",
                "voicefile": "welcome",
                "destnumber": "081234567801",
            },
        )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/tasks/")


async def test_the_task_list_shows_progress_and_outcomes(console: Console) -> None:
    async with console.signed_in() as client:
        task_id = await sent_task(console, client, "081234567801,081234567802")
        with console.db.write() as conn:
            conn.execute(
                calls.update().where(calls.c.number == "+6281234567801").values(status="busy")
            )
        page = await client.get("/console/tasks")
        task_page = await client.get(f"/console/tasks/{task_id}")
    assert page.status_code == 200
    assert task_id[:12] in page.text
    assert "1 / 2 (50%)" in page.text
    assert "busy" in page.text
    assert "queued" in page.text
    assert 'aria-live="polite"' in task_page.text


async def test_cancel_needs_the_csrf_token(console: Console) -> None:
    async with console.signed_in() as client:
        task_id = await sent_task(console, client, "081234567801,081234567802")
        refused = await client.post(f"/console/tasks/{task_id}/cancel")
        forged = await client.post(f"/console/tasks/{task_id}/cancel", data={"csrf": "nope"})
        with console.db.read() as conn:
            assert conn.execute(select(tasks.c.status)).scalar_one() == "active"
        csrf = await console.csrf(client, f"/console/tasks/{task_id}")
        done = await client.post(f"/console/tasks/{task_id}/cancel", data={"csrf": csrf})
        page = await client.get(done.headers["location"])
    assert (refused.status_code, forged.status_code) == (403, 403)
    assert done.status_code == 303
    assert "2 queued call(s) will not be dialed" in page.text
    with console.db.read() as conn:
        assert conn.execute(select(tasks.c.status)).scalar_one() == "canceled"
        assert set(conn.execute(select(calls.c.status)).scalars()) == {"canceled"}


async def test_a_finished_task_s_progress_stream_sends_once_and_ends(console: Console) -> None:
    async with console.signed_in() as client:
        task_id = await sent_task(console, client, "081234567801")
        csrf = await console.csrf(client)
        await client.post(f"/console/tasks/{task_id}/cancel", data={"csrf": csrf})
        response = await client.get(
            f"/console/tasks/{task_id}/events", headers={"accept": "text/event-stream"}
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith("retry: ")
    assert "event: progress" in response.text
    assert '"done":true' in response.text


async def test_one_account_never_sees_another_s_task(console: Console) -> None:
    async with console.signed_in("alice") as alice:
        task_id = await sent_task(console, alice, "081234567801")
        with console.db.read() as conn:
            call_uuid = conn.execute(select(calls.c.uuid)).scalar_one()
    async with console.signed_in("bob") as bob:
        listing = await bob.get("/console/tasks")
        page = await bob.get(f"/console/tasks/{task_id}")
        events = await bob.get(f"/console/tasks/{task_id}/events")
        call = await bob.get(f"/console/calls/{call_uuid}")
        calls_page = await bob.get(f"/console/calls?task={task_id}")
        export = await bob.get(f"/console/calls.csv?task={task_id}")
        csrf = await console.csrf(bob)
        cancel = await bob.post(f"/console/tasks/{task_id}/cancel", data={"csrf": csrf})
    assert task_id[:12] not in listing.text
    assert (page.status_code, events.status_code, call.status_code) == (404, 404, 404)
    assert "+6281234567801" not in calls_page.text
    assert export.text.strip().count("\n") == 0  # the header line only
    assert cancel.status_code == 404
    with console.db.read() as conn:
        assert conn.execute(select(tasks.c.status)).scalar_one() == "active"


async def test_the_operator_sees_every_account_and_sends_nothing(console: Console) -> None:
    async with console.signed_in("alice") as alice:
        alice_task = await sent_task(console, alice, "081234567801")
    async with console.signed_in("bob") as bob:
        csrf = await console.csrf(bob, "/console/send")
        await bob.post(
            "/console/send",
            data={"nationcode": "id", "voicefile": "bob-voice", "destnumber": "081234567802"},
            headers={**JSON, "x-csrf-token": csrf},
        )
    async with console.browser() as operator:
        csrf = csrf_of(await operator.get("/console/signin"))
        await operator.post(
            "/console/signin/operator", data={"token": OPERATOR_TOKEN, "csrf": csrf}
        )
        listing = await operator.get("/console/tasks")
        only_bob = await operator.get("/console/tasks?account=bob")
        nobody = await operator.get("/console/tasks?account=nobody")
        page = await operator.get(f"/console/tasks/{alice_task}")
        send_form = await operator.get("/console/send")
    assert listing.status_code == 200
    assert alice_task[:12] in listing.text
    assert "bob" in listing.text
    assert alice_task[:12] not in only_bob.text
    assert "No task yet." in nobody.text
    assert page.status_code == 200
    assert send_form.status_code == 403
