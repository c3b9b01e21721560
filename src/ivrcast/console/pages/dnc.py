"""Do-not-call: an account manages its own list here, the operator the global list that
applies to every account. Numbers are written as in a broadcast and kept in E.164."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ivrcast.api.forms import read_form
from ivrcast.api.services.dnc import read_numbers
from ivrcast.console.web import Ctx, CurrentViewer, PostingViewer, error_text, redirect, render
from ivrcast.errors import IvrcastError
from ivrcast.numbers import NATIONS
from ivrcast.store import dnc

router = APIRouter()

PAGE_SIZE = 100


def _list_id(account_id: int | None) -> int:
    return dnc.GLOBAL if account_id is None else account_id


@router.get("/dnc")
async def dnc_page(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    after = request.query_params.get("after") or None
    list_id = _list_id(viewer.account_id)

    def read() -> dict[str, Any]:
        with ctx.db.read() as conn:
            return {
                "entries": dnc.list_numbers(conn, list_id, limit=PAGE_SIZE, after=after),
                "total": dnc.count_numbers(conn, list_id),
            }

    data = await ctx.in_thread(read)
    entries = data["entries"]
    return render(
        request,
        viewer,
        "dnc.html",
        {
            "page": "dnc",
            **data,
            "nations": list(NATIONS.values()),
            "next": entries[-1].number if len(entries) == PAGE_SIZE else None,
            "notice": request.query_params.get("notice"),
            "changed": request.query_params.get("changed"),
            "invalid": request.query_params.get("invalid"),
            "error": request.query_params.get("error"),
        },
    )


@router.post("/dnc")
async def dnc_change(request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    form = await read_form(request)
    fields = {name: str(form.get(name, "")) for name in ("nationcode", "numbers", "action")}
    list_id = _list_id(viewer.account_id)
    removing = fields["action"] == "remove"
    try:
        parsed = read_numbers(ctx, fields)
    except IvrcastError as exc:
        return redirect("/dnc", error=error_text(exc)[1])

    def write() -> int:
        with ctx.db.write() as conn:
            if removing:
                return dnc.remove_numbers(conn, list_id, parsed.valid)
            return dnc.add_numbers(conn, list_id, parsed.valid, now=ctx.clock.now())

    changed = await ctx.in_thread(write)
    return redirect(
        "/dnc",
        notice="removed" if removing else "added",
        changed=changed,
        invalid=len(parsed.invalid),
    )
