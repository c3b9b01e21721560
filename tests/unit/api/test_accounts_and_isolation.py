"""Who may call, and that an account sees only what is its own."""

from __future__ import annotations

from datetime import timedelta

from api_service import Service
from sqlalchemy import select

from ivrcast.store.accounts import update_account
from ivrcast.store.tables import accounts

PLAY = "App.Sip_Call.PlayVoice"
BATCH = {"nationcode": "id", "destnumber": "081234567890", "voicetype": 1, "voicefile": "welcome"}


async def test_accesskeys_are_kept_only_as_keyed_hashes(sqlite_service: Service) -> None:
    with sqlite_service.db.read() as conn:
        stored = conn.execute(select(accounts.c.accesskey_hash)).scalars().all()
    assert stored
    assert all("secret-key" not in value and len(value) == 64 for value in stored)


async def test_a_disabled_account_is_refused(sqlite_service: Service) -> None:
    with sqlite_service.db.write() as conn:
        update_account(conn, "alice", disabled=True)
    assert (await sqlite_service.as_alice(PLAY, **BATCH))["code"] == 601


async def test_an_expired_account_answers_602(sqlite_service: Service) -> None:
    with sqlite_service.db.write() as conn:
        update_account(conn, "alice", expires_at=sqlite_service.clock.now() + timedelta(hours=1))
    assert (await sqlite_service.as_alice(PLAY, **BATCH))["code"] == 200
    sqlite_service.clock.advance(3601)
    assert (await sqlite_service.as_alice(PLAY, **BATCH))["code"] == 602


async def test_an_address_outside_the_allowed_networks_answers_604(sqlite_service: Service) -> None:
    # The test client connects from 198.51.100.7.
    with sqlite_service.db.write() as conn:
        update_account(conn, "alice", allowed_ips=["203.0.113.0/24"])
    assert (await sqlite_service.as_alice(PLAY, **BATCH))["code"] == 604
    with sqlite_service.db.write() as conn:
        update_account(conn, "alice", allowed_ips=["203.0.113.0/24", "198.51.100.0/25"])
    assert (await sqlite_service.as_alice(PLAY, **BATCH))["code"] == 200


async def test_one_account_never_sees_another_ones_tasks_voices_or_records(
    service: Service,
) -> None:
    service.add_account("mallory", accesskey="other-key")
    mallory = {"appid": "mallory", "accesskey": "other-key"}
    task_id = (await service.as_alice(PLAY, **BATCH))["data"]["taskid"]

    status = await service.yunhu("App.Sip_Call.TaskStatus", taskid=task_id, **mallory)
    assert status["data"]["errors"]["code"] == 1024
    cancel = await service.yunhu("App.Sip_Call.CancelTask", taskid=task_id, **mallory)
    assert cancel["data"]["errors"]["code"] == 1024
    play = await service.yunhu(PLAY, **{**BATCH, **mallory})
    assert play["data"]["errors"]["code"] == 1029  # alice's voice is not hers
    voices = await service.yunhu("App.Sip_Voice.List", **mallory)
    assert voices["data"]["voices"] == []

    await service.as_alice("App.Sip_Call.CancelTask", taskid=task_id)
    bills = await service.yunhu("App.Sip_Cdr.GetBill", syncflag=3, **mallory)
    assert bills["data"]["list"] == []
    assert (await service.as_alice("App.Sip_Cdr.GetBill", syncflag=3))["data"]["total"] == 1
