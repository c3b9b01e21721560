"""The console's recording player: the send page's option, and the call timeline's
`<audio>` served from the console itself, to the call's account (and the operator) only."""

from __future__ import annotations

from console_client import Console
from sqlalchemy import select

from ivrcast.recordings import recording_path
from ivrcast.rtp.recording import wav_header
from ivrcast.store.tables import calls, tasks

WAV = wav_header(4) + b"\x10\x00\xf0\xff"


async def test_recorded_call_has_a_player_its_account_can_play(console: Console) -> None:
    async with console.signed_in("alice") as client:
        send_page = await client.get("/console/send")
        assert 'name="record"' in send_page.text
        task_id = await console.send(client, "081234567890", record="1")
        with console.db.read() as conn:
            assert conn.execute(select(tasks.c.record)).scalar_one() is True
            uuid = conn.execute(select(calls.c.uuid)).scalar_one()
        console.finish_calls(task_id, recorded=True)
        folder = console.settings.recordings_dir
        folder.mkdir(parents=True)
        recording_path(folder, uuid).write_bytes(WAV)

        page = await client.get(f"/console/calls/{uuid}")
        player = f'src="/console/calls/{uuid}/recording"'
        assert "<audio controls" in page.text
        assert player in page.text
        played = await client.get(f"/console/calls/{uuid}/recording")
        assert played.status_code == 200
        assert played.headers["content-type"] == "audio/wav"
        assert played.content == WAV
    async with console.operator() as client:
        assert (await client.get(f"/console/calls/{uuid}/recording")).content == WAV
    async with console.signed_in("bob") as client:
        assert (await client.get(f"/console/calls/{uuid}/recording")).status_code == 404


async def test_unrecorded_call_has_no_player(console: Console) -> None:
    async with console.signed_in("alice") as client:
        task_id = await console.send(client, "081234567890")
        console.finish_calls(task_id)
        with console.db.read() as conn:
            uuid = conn.execute(select(calls.c.uuid)).scalar_one()
        page = await client.get(f"/console/calls/{uuid}")
        assert "<audio" not in page.text
        assert (await client.get(f"/console/calls/{uuid}/recording")).status_code == 404
