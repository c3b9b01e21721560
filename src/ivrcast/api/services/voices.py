"""`App.Sip_Voice.Upload` and `App.Sip_Voice.List`: the account's voice library."""

from __future__ import annotations

from typing import Any

from ivrcast.api import params
from ivrcast.api.context import ApiContext
from ivrcast.api.services.voice_errors import voice_errors_for
from ivrcast.errors import ValidationError
from ivrcast.store.voices import VoiceInfo, list_voices
from ivrcast.voices.library import add_uploaded_voice


def describe(voice: VoiceInfo) -> dict[str, Any]:
    return {
        "name": voice.name,
        "duration_ms": voice.duration_ms,
        "source_format": voice.source_format,
        "source_bytes": voice.source_bytes,
        "created_at": voice.created_at.isoformat(),
    }


async def upload_voice(
    ctx: ApiContext, form: params.Params, file: bytes | None, client_ip: str | None
) -> dict[str, Any]:
    account = await ctx.in_thread(lambda: ctx.account_from(form, client_ip))
    name = params.required(form, "name")
    if file is None:
        raise ValidationError("file", "is required: send the audio as a form-data file")
    with voice_errors_for("file"):
        voice = await add_uploaded_voice(
            ctx.db,
            ctx.settings,
            ctx.transcoder,
            account_id=account.id,
            name=name,
            data=file,
            now=ctx.clock.now(),
        )
    return {"desc": "Voice uploaded", "voice": describe(voice)}


async def voice_list(ctx: ApiContext, form: params.Params, client_ip: str | None) -> dict[str, Any]:
    def read() -> list[VoiceInfo]:
        account = ctx.account_from(form, client_ip)
        with ctx.db.read() as conn:
            return list_voices(conn, account.id)

    voices = await ctx.in_thread(read)
    return {"desc": "Voices", "voices": [describe(v) for v in voices]}
