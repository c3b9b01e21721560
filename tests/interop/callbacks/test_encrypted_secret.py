"""Callback secrets are stored encrypted; the sender decrypts them and the receiver
verifies the signatures, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from callback_receiver import Receiver
from sqlalchemy import select

from callback_world import T0, finish_task, make_account
from ivrcast.callbacks.sender import CallbackSender
from ivrcast.clock import FrozenClock
from ivrcast.config import Settings
from ivrcast.credentials import load_secret_key, seal_secret
from ivrcast.store.engine import Database
from ivrcast.store.tables import accounts, outbox


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def receiver(clock: FrozenClock) -> Iterator[Receiver]:
    receiver = Receiver(now=lambda: clock.now().timestamp(), secret="the-plain-secret")
    receiver.start()
    yield receiver
    receiver.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate(
        {"data_dir": tmp_path / "data", "security": {"allow_private_urls": True}}
    )


@pytest.mark.parametrize("key_given", [True, False], ids=["key-given", "key-from-data-dir"])
async def test_encrypted_secrets_sign_records_the_receiver_verifies(
    database: Database,
    clock: FrozenClock,
    receiver: Receiver,
    settings: Settings,
    key_given: bool,
) -> None:
    key = load_secret_key(settings)
    sealed = seal_secret(key, "the-plain-secret")
    account = make_account(database, "a", callback_url=receiver.url(), secret=sealed)
    with database.read() as conn:
        column = conn.scalar(select(accounts.c.callback_secret).where(accounts.c.id == account.id))
    assert column is not None
    assert "the-plain-secret" not in column
    finish_task(database, account, 2)
    sender = CallbackSender(settings, database, clock=clock, key=key if key_given else None)
    assert await sender.deliver_due() == 2
    await sender.aclose()
    assert len(receiver.received) == 2
    assert [r.signature_error for r in receiver.received] == [None, None]


async def test_a_secret_the_key_cannot_open_is_a_failed_attempt_not_an_unsigned_post(
    database: Database, clock: FrozenClock, receiver: Receiver, settings: Settings
) -> None:
    sealed = seal_secret(b"another server's key", "the-plain-secret")
    account = make_account(database, "a", callback_url=receiver.url(), secret=sealed)
    finish_task(database, account, 1)
    sender = CallbackSender(settings, database, clock=clock)
    assert await sender.deliver_due() == 1
    await sender.aclose()
    assert receiver.received == []
    with database.read() as conn:
        row = conn.execute(select(outbox.c.status, outbox.c.last_error)).one()
    assert row.status == "pending"
    assert "cannot be decrypted" in row.last_error
