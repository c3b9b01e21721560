"""Reading a request's form (multipart or URL-encoded), the one way every route does.

The body's size and pace are bounded by `RequestLimits` before this reads it; this
bounds its parts, and refuses a NUL character in any field, as `params` does for every
parameter (PostgreSQL refuses NUL in every statement, and no field the forms carry can
hold one).
"""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from ivrcast.api.context import ApiContext
from ivrcast.errors import ValidationError

MAX_FORM_FIELDS = 64
"""The vendor's methods take about fifteen fields, the console's forms fewer."""
MAX_FORM_FILES = 1


async def read_form(request: Request) -> FormData:
    """The request's form, each text field at most `server.max_body_bytes` long."""
    ctx: ApiContext = request.app.state.ctx
    try:
        form = await request.form(
            max_files=MAX_FORM_FILES,
            max_fields=MAX_FORM_FIELDS,
            max_part_size=ctx.settings.server.max_body_bytes,
        )
    except HTTPException as exc:  # the form parser's refusals: too many parts, bad framing
        raise ValidationError("body", f"is not an acceptable form: {exc.detail}") from None
    for name, value in form.multi_items():
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            await form.close()
            raise ValidationError(name.replace("\x00", ""), "must not contain a NUL character")
    return form
