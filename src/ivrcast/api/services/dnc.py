"""`App.Sip_Dnc.Add`, `App.Sip_Dnc.Remove` and `App.Sip_Dnc.List`: the account's own
do-not-call list. The global list is the operator's (`ivrcast dnc --global`, the
console); it applies to every account but no account reads or changes it here.

`numbers` is written as `destnumber` is (same separators, same national or E.164
forms) and matched in E.164, so `081234567890` and `+6281234567890` are one entry.
"""

from __future__ import annotations

from typing import Any

from ivrcast.api import params
from ivrcast.api.context import ApiContext
from ivrcast.api.services.play_voice import listed_invalid
from ivrcast.errors import ValidationError
from ivrcast.numbers import ParsedNumbers, get_nation, parse_destnumbers
from ivrcast.store import dnc

LIST_LIMIT_MAX = 1000


def read_numbers(ctx: ApiContext, form: params.Params) -> ParsedNumbers:
    nation = get_nation(params.required(form, "nationcode").lower())
    if "numbers" not in form:
        raise ValidationError("numbers", "is required")
    try:
        return parse_destnumbers(form["numbers"], nation, limit=ctx.settings.limits.max_numbers)
    except ValidationError as exc:
        # The parser words its errors for `destnumber`; here the parameter is `numbers`.
        detail = str(exc).removeprefix(f"{exc.param}: ")
        raise ValidationError("numbers", detail) from None


async def add(ctx: ApiContext, form: params.Params, client_ip: str | None) -> dict[str, Any]:
    parsed = read_numbers(ctx, form)

    def write() -> int:
        account = ctx.account_from(form, client_ip)
        with ctx.db.write() as conn:
            return dnc.add_numbers(conn, account.id, parsed.valid, now=ctx.clock.now())

    added = await ctx.in_thread(write)
    return {
        "desc": "Numbers added to the do-not-call list",
        "added": added,
        "listed": len(parsed.valid) - added,
        "invalid": listed_invalid(ctx, parsed.invalid),
        "invalidcount": len(parsed.invalid),
    }


async def remove(ctx: ApiContext, form: params.Params, client_ip: str | None) -> dict[str, Any]:
    parsed = read_numbers(ctx, form)

    def write() -> int:
        account = ctx.account_from(form, client_ip)
        with ctx.db.write() as conn:
            return dnc.remove_numbers(conn, account.id, parsed.valid)

    removed = await ctx.in_thread(write)
    return {
        "desc": "Numbers removed from the do-not-call list",
        "removed": removed,
        "invalid": listed_invalid(ctx, parsed.invalid),
        "invalidcount": len(parsed.invalid),
    }


async def list_numbers(
    ctx: ApiContext, form: params.Params, client_ip: str | None
) -> dict[str, Any]:
    """A page in number order; `cursor` is the last number of the previous page."""
    limit = params.integer(form, "limit", default=100, low=1, high=LIST_LIMIT_MAX)
    cursor = params.optional(form, "cursor")
    if cursor is not None and not (cursor.startswith("+") and cursor[1:].isdigit()):
        raise ValidationError("cursor", "must be a number in E.164 form, as `next` gives")

    def read() -> tuple[list[dnc.DncEntry], int]:
        account = ctx.account_from(form, client_ip)
        with ctx.db.read() as conn:
            page = dnc.list_numbers(conn, account.id, limit=limit, after=cursor)
            return page, dnc.count_numbers(conn, account.id)

    page, total = await ctx.in_thread(read)
    return {
        "desc": "Do-not-call list",
        "total": total,
        "numbers": [
            {"number": entry.number, "created_at": entry.created_at.isoformat()} for entry in page
        ],
        "next": page[-1].number if len(page) == limit else None,
    }
