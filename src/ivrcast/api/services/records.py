"""The vendor's record pulls: `App.Sip_Cdr.GetBill` and `POST /api/cdrs`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ivrcast.api import params
from ivrcast.api.context import ApiContext
from ivrcast.errors import ValidationError
from ivrcast.store.cdrs import RecordFilter, page_records, pull_records

SYNCFLAGS = {1: "records not fetched before", 2: "records fetched before", 3: "all records"}
CDR_TIME = "%Y-%m-%d %H:%M:%S"


async def get_bill(ctx: ApiContext, form: params.Params, client_ip: str | None) -> dict[str, Any]:
    syncflag = params.choice(form, "syncflag", SYNCFLAGS, default=1)
    limit = params.integer(form, "limit", default=100, low=1, high=1000)

    def read() -> list[dict[str, Any]]:
        account = ctx.account_from(form, client_ip)
        # syncflag 1 marks what it returns, so it writes.
        with ctx.db.write() as conn:
            return pull_records(
                conn, account.id, syncflag=syncflag, limit=limit, now=ctx.clock.now()
            )

    records = await ctx.in_thread(read)
    return {"status": 0, "desc": "Call records", "total": len(records), "list": records}


def _time(form: params.Params, name: str, zone: ZoneInfo) -> datetime:
    raw = params.required(form, name)
    try:
        value = datetime.strptime(raw, CDR_TIME).replace(tzinfo=zone)
    except ValueError:
        raise ValidationError(name, f"must be 'YYYY-MM-DD HH:MM:SS', got {raw!r}") from None
    return params.bounded_instant(name, value, raw)


async def cdrs(ctx: ApiContext, form: params.Params, client_ip: str | None) -> dict[str, Any]:
    """The vendor's paged record query; rows carry its names (`callnumber`, `context`)."""
    zone = ZoneInfo(ctx.settings.callbacks.timezone)
    start = _time(form, "starttime", zone)
    end = _time(form, "endtime", zone)
    if end < start:
        raise ValidationError("endtime", "is before starttime")
    page = params.integer(form, "page", default=1, low=1, high=1_000_000)
    per_page = params.integer(form, "per_page", default=10, low=1, high=1000)
    context = params.optional(form, "context")
    if context not in (None, "callin", "callout"):
        raise ValidationError("context", f"must be callin or callout, got {context!r}")
    callmethod = params.integer(form, "callmethod", default=6, low=2, high=6)

    def read() -> tuple[list[dict[str, Any]], int]:
        account = ctx.account_from(form, client_ip)
        # ivrcast only makes outbound IVR calls (callmethod 6).
        if context == "callin" or callmethod != 6:
            return [], 0
        where = RecordFilter(
            account_id=account.id,
            start=start,
            end=end,
            disnumber=params.optional(form, "disnumber"),
            callnumber=params.optional(form, "callnumber"),
        )
        with ctx.db.read() as conn:
            return page_records(conn, where, page=page, per_page=per_page)

    rows, total = await ctx.in_thread(read)
    return {
        "data": [{**row, "callnumber": row["destnumber"], "context": "callout"} for row in rows],
        "page": page,
        "per_page": per_page,
        "total": total,
    }
