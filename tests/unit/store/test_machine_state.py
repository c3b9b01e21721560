"""The `machine` final state and the detection columns, on both engines: a call ended by
answering-machine detection is stored as such and its record says so."""

from __future__ import annotations

import functools
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ivrcast.callbacks.record import build_call_record
from ivrcast.store.accounts import create_account
from ivrcast.store.engine import Database
from ivrcast.store.tables import call_records, calls
from ivrcast.store.tasks import NewTask, create_task
from ivrcast.store.transitions import CallEnd, claim_due_calls, due_tasks, finish_calls
from ivrcast.store.voices import insert_voice

NOW = datetime(2026, 11, 26, 3, 4, 5, tzinfo=UTC)
BUILD = functools.partial(build_call_record, timezone=ZoneInfo("UTC"))


def test_a_machine_call_is_stored_and_recorded_as_machine(database: Database) -> None:
    with database.write() as conn:
        account = create_account(conn, appid="a", accesskey_hash="h", now=NOW)
        voice = insert_voice(
            conn, account_id=account.id, name="v", source_url=None, source_format="wav",
            source_bytes=1, duration_ms=1, pcmu=b"\xff", pcma=b"\xd5", now=NOW,
        )  # fmt: skip
        task_id = create_task(
            conn,
            NewTask(
                account_id=account.id, nationcode="id", voice_id=voice.id,
                numbers=["+6281200000001", "+6281200000002"], userkey=False, todayonly=1,
                waittime=30, conntime=30, disnumber=None, chengshudu="", customuuid="",
                duplicates=0, invalid=0, local_day=date(2026, 11, 26),
                amd=True, amdaction="beep",
            ),
            now=NOW,
        )  # fmt: skip
        (due,) = due_tasks(conn, now=NOW, count_up_to=100)
        assert (due.amd, due.amdaction, due.record) == (True, "beep", False)
        machine, person = claim_due_calls(
            conn, task_id=task_id, limit=2, node_id="n", build_record=BUILD, now=NOW
        )
        answered = NOW + timedelta(seconds=3)
        ends = {
            machine.id: CallEnd(
                status="machine", answered_at=answered, invited_at=NOW,
                answered_by="machine", amd_ms=2500,
            ),
            person.id: CallEnd(
                status="completed", answered_at=answered, invited_at=NOW,
                answered_by="human", amd_ms=1800,
            ),
        }  # fmt: skip
        assert finish_calls(conn, ends, build_record=BUILD, now=NOW + timedelta(seconds=9)) == 2
    with database.read() as conn:
        rows = {r.id: r for r in conn.execute(select(calls))}
        payloads = {
            call_id: json.loads(payload)
            for call_id, payload in conn.execute(
                select(call_records.c.call_id, call_records.c.payload)
            )
        }
    assert (rows[machine.id].status, rows[machine.id].answered_by) == ("machine", "machine")
    assert payloads[machine.id]["status"] == "machine"
    assert (payloads[machine.id]["answeredby"], payloads[machine.id]["amdms"]) == ("machine", 2500)
    assert (payloads[person.id]["answeredby"], payloads[person.id]["amdms"]) == ("human", 1800)
