"""PlayVoice `amd` and `amdaction`: checked, each error naming its parameter, and kept
with the task; detection's listening time is added to the default `conntime`."""

from __future__ import annotations

from typing import Any

import pytest
from api_service import Service
from sqlalchemy import select

from ivrcast.store.tables import tasks


async def submit(service: Service, **extra: str) -> dict[str, Any]:
    return await service.as_alice(
        "App.Sip_Call.PlayVoice",
        nationcode="id",
        destnumber="081234560001",
        voicetype=1,
        voicefile="welcome",
        **extra,
    )


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"amd": "2"}, "amd"),
        ({"amd": "1", "amdaction": "shout"}, "amdaction"),
        ({"amdaction": "play"}, "amdaction"),
    ],
)
async def test_bad_values_name_their_parameter(
    service: Service, fields: dict[str, str], param: str
) -> None:
    body = await submit(service, **fields)
    assert body["code"] == 400
    assert body["msg"].startswith(f"{param}: ")


async def test_amd_is_kept_with_its_action_and_lengthens_the_default_conntime(
    service: Service,
) -> None:
    plain = (await submit(service))["data"]["taskid"]
    hangup = (await submit(service, amd="1"))["data"]["taskid"]
    beep = (await submit(service, amd="1", amdaction="beep"))["data"]["taskid"]
    with service.db.read() as conn:
        rows = {
            row.id: (row.amd, row.amdaction, row.conntime)
            for row in conn.execute(
                select(tasks.c.id, tasks.c.amd, tasks.c.amdaction, tasks.c.conntime)
            )
        }
    amd = service.settings.amd
    base = rows[plain][2]
    assert rows[plain][:2] == (False, None)
    assert rows[hangup] == (True, "hangup", base + amd.total_ms // 1000)
    assert rows[beep] == (True, "beep", base + (amd.total_ms + amd.beep_timeout_ms) // 1000)
