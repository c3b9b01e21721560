"""Voices: the library with durations, upload (drag and drop or a file field), playback
of the transcoded audio, and delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from ivrcast.api.forms import read_form
from ivrcast.api.params import MAX_INTEGER
from ivrcast.api.services.voices import upload_voice
from ivrcast.console.audio import wav_from_ulaw
from ivrcast.console.web import (
    Ctx,
    CurrentViewer,
    PostingViewer,
    Viewer,
    account_scope,
    client_ip,
    error_text,
    for_account,
    not_found,
    operator_refused,
    redirect,
    render,
)
from ivrcast.errors import IvrcastError
from ivrcast.store.accounts import appids_by_account
from ivrcast.store.engine import IntegrityViolation
from ivrcast.store.voices import (
    delete_voice,
    find_voice,
    named_voices,
    voice_audio,
    voice_task_count,
)

router = APIRouter()

VoiceId = Annotated[int, Path(ge=1, le=MAX_INTEGER)]


async def _library(request: Request, ctx: Ctx, viewer: Viewer) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        with ctx.db.read() as conn:
            appids = appids_by_account(conn)
            voices = named_voices(conn, account_scope(request, viewer, appids))
        return {"voices": voices, "appids": appids}

    return await ctx.in_thread(read)


def _page(
    request: Request,
    viewer: Viewer,
    library: dict[str, Any],
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        viewer,
        "voices.html",
        {
            "page": "voices",
            **library,
            "error": error,
            "notice": request.query_params.get("notice"),
            "max_upload_mb": request.app.state.ctx.settings.limits.max_upload_bytes // 2**20,
        },
        status_code=status_code,
    )


@router.get("/voices")
async def voice_list(request: Request, ctx: Ctx, viewer: CurrentViewer) -> Response:
    return _page(request, viewer, await _library(request, ctx, viewer))


@router.post("/voices")
async def voice_upload(request: Request, ctx: Ctx, viewer: PostingViewer) -> Response:
    if viewer.account is None:
        return operator_refused(request, viewer)
    form = await read_form(request)
    file = form.get("file")
    data = None
    if isinstance(file, UploadFile) and file.filename:
        # One byte past the limit is enough to refuse a too-large file without reading it all.
        data = await file.read(ctx.settings.limits.max_upload_bytes + 1)
    params = {"name": str(form.get("name", ""))}
    try:
        await upload_voice(for_account(ctx, viewer), params, data, client_ip(request))
    except IvrcastError as exc:
        status, message = error_text(exc)
        library = await _library(request, ctx, viewer)
        return _page(request, viewer, library, error=message, status_code=status)
    return redirect("/voices", notice="uploaded")


@router.get("/voices/{voice_id}/audio.wav")
async def voice_wav(
    voice_id: VoiceId, request: Request, ctx: Ctx, viewer: CurrentViewer
) -> Response:
    def read() -> bytes | None:
        with ctx.db.read() as conn:
            if find_voice(conn, viewer.account_id, voice_id) is None:
                return None
            pcmu, _pcma = voice_audio(conn, voice_id)
        return wav_from_ulaw(pcmu)

    wav = await ctx.in_thread(read)
    if wav is None:
        return not_found(request, viewer, "No such voice.")
    return Response(wav, media_type="audio/wav", headers={"Cache-Control": "private, max-age=300"})


@router.post("/voices/{voice_id}/delete")
async def voice_delete(
    voice_id: VoiceId, request: Request, ctx: Ctx, viewer: PostingViewer
) -> Response:
    if viewer.account is None:
        return operator_refused(request, viewer)
    account_id = viewer.account.id

    def write() -> str | None:
        """None when deleted; otherwise why not."""
        with ctx.db.write() as conn:
            voice = find_voice(conn, account_id, voice_id)
            if voice is None:
                return "missing"
            used = voice_task_count(conn, voice_id)
            if used:
                return (
                    f"The voice {voice.name!r} is used by {used} task(s) and is kept so that "
                    "their calls can still be dialed and explained. Upload the new audio "
                    "under another name."
                )
            delete_voice(conn, account_id, voice_id)
        return None

    try:
        refusal = await ctx.in_thread(write)
    except IntegrityViolation:
        # A task was created with this voice between the check and the delete.
        refusal = "The voice was just put to use by a new task and is kept."
    if refusal == "missing":
        return not_found(request, viewer, "No such voice.")
    if refusal is not None:
        library = await _library(request, ctx, viewer)
        return _page(request, viewer, library, error=refusal, status_code=409)
    return redirect("/voices", notice="deleted")
