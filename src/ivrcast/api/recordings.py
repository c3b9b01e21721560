"""`GET /v1/recordings/{call}`: a call's recording, as a WAV file (docs/recordings.md).

Two ways in: the signed link of the call's record (`expires` and `sig`, no credentials,
checked without the database), or the account's credentials, which open only the
account's own calls. The file is read from `[recordings] dir`, named by the call's uuid
only, so no request can name any other file.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from ivrcast.api.context import ApiContext
from ivrcast.api.errors import BadRecordingLink
from ivrcast.api.v1 import AUTHENTICATED, credentials, errors
from ivrcast.api.yunhu import client_ip
from ivrcast.errors import NotFoundError
from ivrcast.recordings import recording_path
from ivrcast.recordings.files import is_call_uuid
from ivrcast.store.calls import has_recording

router = APIRouter(prefix="/v1", tags=["v1"])

WAV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The recording: 8 kHz 16-bit stereo WAV, left sent, right received",
        "content": {"audio/wav": {}},
    }
}


class RecordingNotFound(NotFoundError):
    """No recording of this call for this account (never made, or deleted after
    `[recordings] keep_days`)."""


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


@router.get(
    "/recordings/{call}",
    summary="A call's recording (signed link, or the account's credentials)",
    response_class=FileResponse,
    responses={**WAV_ANSWER, **errors(*AUTHENTICATED, 404)},
)
async def get_recording(
    call: str,
    request: Request,
    ctx: Annotated[ApiContext, Depends(_ctx)],
    expires: Annotated[str | None, Query(description="From the signed link")] = None,
    sig: Annotated[str | None, Query(description="From the signed link")] = None,
) -> FileResponse:
    if not is_call_uuid(call):
        raise RecordingNotFound(f"call: no recording of {call!r}")
    if expires is not None or sig is not None:
        if not ctx.recording_links.check(call, expires or "", sig or "", now=ctx.clock.now()):
            raise BadRecordingLink("sig: the link is altered or has expired")
    else:
        auth = credentials(request)

        def owned() -> bool:
            account = ctx.account_from(auth, client_ip(request))
            with ctx.db.read() as conn:
                return has_recording(conn, account.id, call)

        if not await ctx.in_thread(owned):
            raise RecordingNotFound(f"call: no recording of {call!r}")
    path = recording_path(ctx.settings.recordings_dir, call)
    if not path.is_file():
        raise RecordingNotFound(f"call: no recording of {call!r}")
    return FileResponse(path, media_type="audio/wav", filename=f"{call}.wav")
