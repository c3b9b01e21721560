"""A browser-like client of the console app in process (the fixture is in conftest.py)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from factories import add_account, add_uploaded_voice
from ivrcast.clock import FrozenClock
from ivrcast.config import Settings
from ivrcast.credentials import hash_secret, load_secret_key
from ivrcast.store.engine import Database
from ivrcast.store.tables import FinalState

START = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # 10:00 in Jakarta
OPERATOR_TOKEN = "operator-token-for-tests"
HTML = {"accept": "text/html"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    """The app, its database and clock, and helpers that act as a browser would."""

    settings: Settings
    db: Database
    clock: FrozenClock
    transport: httpx.ASGITransport
    accounts: dict[str, int]

    def browser(self) -> httpx.AsyncClient:
        """A client with its own cookie jar, like a separate browser."""
        return httpx.AsyncClient(
            transport=self.transport, base_url="http://ivrcast.test", headers=HTML
        )

    def add_account(self, appid: str, accesskey: str = "secret-key", **extra: Any) -> int:
        with self.db.write() as conn:
            account = add_account(
                conn,
                appid,
                now=self.clock.now(),
                accesskey_hash=hash_secret(load_secret_key(self.settings), accesskey),
                **extra,
            )
        self.accounts[appid] = account.id
        return account.id

    def add_voice(self, account_id: int, name: str = "welcome") -> int:
        with self.db.write() as conn:
            return add_uploaded_voice(conn, account_id, now=self.clock.now(), name=name)

    async def sign_in(
        self, client: httpx.AsyncClient, appid: str = "alice", accesskey: str = "secret-key"
    ) -> httpx.Response:
        csrf = csrf_of(await client.get("/console/signin"))
        return await client.post(
            "/console/signin", data={"appid": appid, "accesskey": accesskey, "csrf": csrf}
        )

    @contextlib.asynccontextmanager
    async def signed_in(self, appid: str = "alice") -> AsyncIterator[httpx.AsyncClient]:
        async with self.browser() as client:
            response = await self.sign_in(client, appid)
            assert response.status_code == 303, response.text
            yield client

    async def csrf(self, client: httpx.AsyncClient, page: str = "/console/tasks") -> str:
        return csrf_of(await client.get(page))

    @contextlib.asynccontextmanager
    async def operator(self) -> AsyncIterator[httpx.AsyncClient]:
        async with self.browser() as client:
            csrf = csrf_of(await client.get("/console/signin"))
            response = await client.post(
                "/console/signin/operator", data={"token": OPERATOR_TOKEN, "csrf": csrf}
            )
            assert response.status_code == 303, response.text
            yield client

    async def send(self, client: httpx.AsyncClient, numbers: str, **fields: str) -> str:
        """Send a broadcast as the page's script does; returns the task id."""
        csrf = await self.csrf(client, "/console/send")
        form = {"nationcode": "id", "voicefile": "welcome", "destnumber": numbers, **fields}
        response = await client.post(
            "/console/send",
            data=form,
            headers={"accept": "application/json", "x-csrf-token": csrf},
        )
        assert response.status_code == 200, response.text
        task_id: str = response.json()["taskid"]
        return task_id

    def finish_calls(self, task_id: str, status: FinalState = "completed", **values: Any) -> None:
        """End the task's calls as the dialer would: final state, record, outbox row."""
        from ivrcast.api.context import ApiContext
        from ivrcast.store.tables import calls
        from ivrcast.store.transitions import CallEnd, finish_calls_where

        ctx: ApiContext = self.transport.app.state.ctx  # type: ignore[attr-defined]
        with self.db.write() as conn:
            finish_calls_where(
                conn,
                calls.c.task_id == task_id,
                CallEnd(status=status, **values),
                from_states=("queued",),
                build_record=ctx.build_record,
                now=self.clock.now(),
            )


def csrf_of(response: httpx.Response) -> str:
    found = _CSRF.search(response.text)
    assert found, f"no CSRF field in {response.status_code} {response.text[:300]}"
    return found.group(1)
