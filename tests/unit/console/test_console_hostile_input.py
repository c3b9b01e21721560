"""Hostile query strings and paths get a client error or are ignored as the console
ignores any filter it cannot read; never a server error."""

from __future__ import annotations

import pytest
from console_client import Console

HUGE = "9" * 25


@pytest.mark.parametrize(
    "path",
    [
        f"/console/calls?before={HUGE}",
        f"/console/callbacks?before={HUGE}",
        "/console/tasks?before=0001-01-01T00:00:00%2B01:00",
        "/console/tasks?before=9999-12-31T23:59:59-14:00",
        "/console/tasks?before=2026-11-26T00:00:00",
        "/console/calls?since=0001-01-01&until=9999-12-31",
        "/console/calls.csv?since=0001-01-01&until=9999-12-31",
    ],
)
async def test_unreadable_filters_are_ignored(console: Console, path: str) -> None:
    async with console.signed_in() as client:
        answer = await client.get(path)
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "param"),
    [
        ("GET", f"/console/voices/{HUGE}/audio.wav", "voice_id"),
        ("POST", f"/console/voices/{HUGE}/delete", "voice_id"),
        ("GET", "/console/calls?number=0%001", "number"),
        ("GET", "/console/tasks/a%00b", "path"),
    ],
)
async def test_ids_beyond_64_bits_and_nul_characters_are_client_errors(
    console: Console, method: str, path: str, param: str
) -> None:
    async with console.signed_in() as client:
        headers = {"x-csrf-token": await console.csrf(client)}
        answer = await client.request(method, path, headers=headers)
    assert answer.status_code == 400
    assert answer.text.startswith(param) or answer.json()["msg"].startswith(param)
