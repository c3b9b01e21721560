"""The console's routes under `/console`, gathered from the page modules."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from ivrcast.console.pages import account, calls, dashboard, dnc, operator, signin, tasks, voices
from ivrcast.console.web import PREFIX

router = APIRouter(prefix=PREFIX, include_in_schema=False)
for _pages in (signin, dashboard, tasks, calls, voices, dnc, account, operator):
    router.include_router(_pages.router)


@router.get("")
async def console_root() -> RedirectResponse:
    """`/console` is `/console/`, so that relative links resolve the same from both."""
    return RedirectResponse(PREFIX + "/", status_code=308)
