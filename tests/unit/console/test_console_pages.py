"""Calls, voices, callbacks, settings and the overview, over HTTP in process."""

from __future__ import annotations

import io
import json
import wave

import pytest
from console_client import Console
from sqlalchemy import select

from ivrcast.console.pages import dashboard
from ivrcast.credentials import load_secret_key, open_secret
from ivrcast.demo_account import demo_tone
from ivrcast.store.accounts import find_account, update_account
from ivrcast.store.tables import calls, outbox, tokens, voices


def _with_callback_url(console: Console, appid: str = "alice") -> None:
    with console.db.write() as conn:
        update_account(conn, appid, callback_url="https://receiver.example/records")


async def test_the_calls_table_filters_and_exports_what_it_shows(console: Console) -> None:
    async with console.signed_in() as client:
        first = await console.send(client, "081234567801,081234567802")
        await console.send(client, "081234567803")
        console.finish_calls(first, "busy", sip_code=486)
        by_task = await client.get(f"/console/calls?task={first}")
        by_state = await client.get("/console/calls?status=queued")
        by_number = await client.get("/console/calls?number=%2B6281234567803")
        as_written = await client.get("/console/calls?number=0812-3456-7803")
        export = await client.get(f"/console/calls.csv?task={first}&status=busy")
    assert "+6281234567801" in by_task.text
    assert "+6281234567803" not in by_task.text
    assert "+6281234567803" in by_state.text
    assert "+6281234567801" not in by_state.text
    assert "+6281234567803" in by_number.text
    assert "+6281234567801" not in by_number.text
    # The number as the customer submitted it finds the call too.
    assert "+6281234567803" in as_written.text
    assert "+6281234567801" not in as_written.text
    assert export.headers["content-disposition"] == 'attachment; filename="calls.csv"'
    lines = export.text.strip().splitlines()
    assert lines[0].startswith("uuid,task_id,")
    assert len(lines) == 3
    assert all(",busy," in line for line in lines[1:])


async def test_a_call_s_timeline_runs_from_queue_to_callback(console: Console) -> None:
    _with_callback_url(console)
    async with console.signed_in() as client:
        task_id = await console.send(client, "081234567804", userkey="1")
        now = console.clock.now()
        with console.db.write() as conn:
            conn.execute(
                calls.update().values(
                    status="answered",
                    claimed_at=now,
                    invited_at=now,
                    ringing_at=now,
                    answered_at=now,
                    trunk="id-main",
                    codec="PCMU",
                )
            )
            uuid = conn.execute(select(calls.c.uuid)).scalar_one()
        console.clock.advance(5)
        with console.db.write() as conn:
            from ivrcast.store.transitions import CallEnd, finish_calls_where

            finish_calls_where(
                conn,
                calls.c.task_id == task_id,
                CallEnd(status="completed", keys="1", sip_code=200),
                from_states=("answered",),
                build_record=console.transport.app.state.ctx.build_record,  # type: ignore[attr-defined]
                now=console.clock.now(),
            )
            conn.execute(outbox.update().values(attempts=2, last_error="HTTP 500 from receiver"))
        page = await client.get(f"/console/calls/{uuid}")
    assert page.status_code == 200
    text = page.text
    order = [
        "Queued",
        "Dialing",
        "INVITE sent",
        "Ringing",
        "Answered",
        "Keys pressed",
        "Ended: completed",
        "Call record written",
        "Callback queued",
        "Callback retry due",
    ]
    positions = [text.index(f'<span class="what">{moment}') for moment in order]
    assert positions == sorted(positions)
    assert "trunk id-main" in text
    assert "HTTP 500 from receiver" in text
    assert "Send the callback again" in text


async def test_voices_upload_play_and_delete(console: Console) -> None:
    tone = demo_tone(seconds=1.0)
    async with console.signed_in() as client:
        csrf = await console.csrf(client, "/console/voices")
        upload = await client.post(
            "/console/voices",
            data={"csrf": csrf, "name": "hello"},
            files={"file": ("hello.wav", tone, "audio/wav")},
        )
        bad = await client.post(
            "/console/voices",
            data={"csrf": csrf, "name": "noise"},
            files={"file": ("noise.wav", b"not audio at all", "audio/wav")},
        )
        listing = await client.get("/console/voices")
        with console.db.read() as conn:
            ids = dict(conn.execute(select(voices.c.name, voices.c.id)).all())
        audio = await client.get(f"/console/voices/{ids['hello']}/audio.wav")
        await console.send(client, "081234567801")  # puts "welcome" to use
        in_use = await client.post(f"/console/voices/{ids['welcome']}/delete", data={"csrf": csrf})
        unused = await client.post(f"/console/voices/{ids['hello']}/delete", data={"csrf": csrf})
        others = await client.post(
            f"/console/voices/{ids['bob-voice']}/delete", data={"csrf": csrf}
        )
        others_audio = await client.get(f"/console/voices/{ids['bob-voice']}/audio.wav")
    assert upload.status_code == 303
    assert bad.status_code == 400
    assert "file:" in bad.text
    assert "hello" in listing.text
    assert "1.0 s" in listing.text
    assert audio.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(audio.content)) as played:
        assert (played.getframerate(), played.getsampwidth(), played.getnchannels()) == (8000, 2, 1)
        assert played.getnframes() == 8000
    assert in_use.status_code == 409
    assert "used by 1 task(s)" in in_use.text
    assert unused.status_code == 303
    assert (others.status_code, others_audio.status_code) == (404, 404)
    with console.db.read() as conn:
        assert set(conn.execute(select(voices.c.name)).scalars()) == {"welcome", "bob-voice"}


async def test_the_delivery_log_shows_failures_and_replays_them(console: Console) -> None:
    _with_callback_url(console)
    async with console.signed_in() as client:
        task_id = await console.send(client, "081234567801,081234567802")
        console.finish_calls(task_id)
        with console.db.write() as conn:
            conn.execute(
                outbox.update()
                .where(
                    outbox.c.id
                    == select(outbox.c.id).order_by(outbox.c.id).limit(1).scalar_subquery()
                )
                .values(status="dead", attempts=9, last_error="connection refused")
            )
        failing = await client.get("/console/callbacks?show=failing")
        csrf = await console.csrf(client, "/console/callbacks")
        replay = await client.post("/console/callbacks/replay", data={"csrf": csrf})
        after = await client.get(replay.headers["location"])
    assert failing.text.count("connection refused") == 1
    assert "given up" in failing.text
    assert replay.status_code == 303
    # Every undelivered record is due again at once, the given-up one included.
    assert "2 delivery(ies) queued again" in after.text
    with console.db.read() as conn:
        rows = conn.execute(select(outbox.c.status, outbox.c.attempts)).all()
    assert sorted(rows) == [("pending", 0), ("pending", 0)]


async def test_a_call_s_callback_can_be_sent_again_from_its_page(console: Console) -> None:
    _with_callback_url(console)
    async with console.signed_in() as client:
        task_id = await console.send(client, "081234567801")
        console.finish_calls(task_id)
        with console.db.write() as conn:
            conn.execute(outbox.update().values(status="delivered", attempts=1))
            uuid = conn.execute(select(calls.c.uuid)).scalar_one()
        csrf = await console.csrf(client)
        response = await client.post(
            "/console/callbacks/replay",
            data={"csrf": csrf, "uuid": uuid, "back": f"/calls/{uuid}"},
        )
    assert response.headers["location"] == f"/console/calls/{uuid}?notice=replayed&queued=1"
    with console.db.read() as conn:
        assert conn.execute(select(outbox.c.status)).scalar_one() == "pending"


async def test_settings_change_the_callback_url(console: Console) -> None:
    async with console.signed_in() as client:
        csrf = await console.csrf(client, "/console/settings")
        bad = await client.post(
            "/console/settings/callback-url", data={"csrf": csrf, "callback_url": "ftp://x"}
        )
        good = await client.post(
            "/console/settings/callback-url",
            data={"csrf": csrf, "callback_url": "https://hooks.example/ivr"},
        )
    assert bad.status_code == 400
    assert "http:// or https://" in bad.text
    assert good.status_code == 303
    with console.db.read() as conn:
        account = find_account(conn, "alice")
    assert account is not None
    assert account.callback_url == "https://hooks.example/ivr"


async def test_a_new_signing_secret_is_shown_once(console: Console) -> None:
    async with console.signed_in() as client:
        csrf = await console.csrf(client, "/console/settings")
        response = await client.post("/console/settings/rotate-secret", data={"csrf": csrf})
        later = await client.get("/console/settings")
    with console.db.read() as conn:
        account = find_account(conn, "alice")
    assert account is not None
    assert account.callback_secret
    # Stored encrypted; shown in the clear once.
    secret = open_secret(load_secret_key(console.settings), account.callback_secret)
    assert secret not in account.callback_secret
    assert secret in response.text
    assert response.headers["cache-control"] == "no-store"
    assert secret not in later.text


async def test_a_new_accesskey_ends_the_old_one_and_other_sessions(console: Console) -> None:
    async with console.signed_in() as other_browser, console.signed_in() as client:
        token = (
            await client.post("/v1/token", json={"appid": "alice", "accesskey": "secret-key"})
        ).json()["token"]
        csrf = await console.csrf(client, "/console/settings")
        response = await client.post("/console/settings/rotate-accesskey", data={"csrf": csrf})
        new_key = response.text.split('id="new-accesskey">')[1].split("<")[0]
        still_here = await client.get("/console/settings")
        other = await other_browser.get("/console/settings")
        old_api = await client.get("/v1/voices", auth=("alice", "secret-key"))
        new_api = await client.get("/v1/voices", auth=("alice", new_key))
        old_token = await client.get("/v1/voices", headers={"authorization": f"Bearer {token}"})
    assert response.headers["cache-control"] == "no-store"
    assert still_here.status_code == 200
    assert other.status_code == 303
    assert (old_api.status_code, new_api.status_code, old_token.status_code) == (401, 200, 401)
    with console.db.read() as conn:
        assert conn.execute(select(tokens)).all() == []


async def test_the_operator_reads_everything_and_changes_no_account(console: Console) -> None:
    async with console.signed_in("bob") as bob:
        await console.send(bob, "081234567809", voicefile="bob-voice")
    async with console.operator() as operator:
        calls_page = await operator.get("/console/calls")
        voices_page = await operator.get("/console/voices")
        settings = await operator.get("/console/settings")
        csrf = await console.csrf(operator)
        upload = await operator.post(
            "/console/voices",
            data={"csrf": csrf, "name": "x"},
            files={"file": ("x.wav", demo_tone(seconds=1.0), "audio/wav")},
        )
    assert "+6281234567809" in calls_page.text
    assert "bob-voice" in voices_page.text
    assert "welcome" in voices_page.text
    assert (settings.status_code, upload.status_code) == (403, 403)


async def test_console_responses_carry_security_headers_and_the_api_s_do_not(
    console: Console,
) -> None:
    async with console.browser() as client:
        page = await client.get("/console/signin")
        script = await client.get("/console/static/console.js")
        api = await client.get("/v1/openapi.json")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert script.status_code == 200
    assert "no-store" not in script.headers.get("cache-control", "")
    assert "content-security-policy" not in api.headers


async def test_the_overview_counts_today_and_streams_updates(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "STREAM_SECONDS", 0.0)
    async with console.signed_in() as client:
        task_id = await console.send(client, "081234567801,081234567802,081234567805")
        await console.send(client, "081234567811")
        with console.db.write() as conn:
            conn.execute(
                calls.update()
                .where(calls.c.number == "+6281234567801")
                .values(answered_at=console.clock.now())
            )
        console.clock.advance(30)
        console.finish_calls(task_id)
        page = await client.get("/console/")
        stream = await client.get(
            "/console/events/overview", headers={"accept": "text/event-stream"}
        )
    assert page.status_code == 200
    assert '<dd data-figure="ended">3</dd>' in page.text
    event = next(line for line in stream.text.splitlines() if line.startswith("data: "))
    figures = json.loads(event.removeprefix("data: "))
    assert (figures["ended"], figures["answered"], figures["queued"]) == (3, 1, 1)
    assert figures["answer_rate"] == pytest.approx(33.3)
    assert figures["avg_billsec"] == pytest.approx(30.0)
    assert [c["code"] for c in figures["countries"]] == ["id"]
    assert sum(figures["chart"]["series"]["answered"]) == 3
