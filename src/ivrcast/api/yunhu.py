"""`POST /api/yunhu`: the vendor-compatible dispatcher, selected by the `service` field.

It accepts what the vendor's clients send (multipart form-data, as in the seed's PHP
example, and URL-encoded forms; JSON objects too) and always answers HTTP 200 with the
`{"code", "msg", "data"}` envelope. `POST /api/cdrs` is the vendor's paged record query,
with its own convention of `code` 1 for success.

The vendor's services other than the batch IVR answer with `ret` where PlayVoice answers
`code`; every service here but PlayVoice answers both, same value, so clients of either
convention work. Both paths also answer with a trailing slash, and another method gets
the envelope (naming the method) rather than the framework's own error body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from ivrcast.api import forms, params
from ivrcast.api.context import ApiContext
from ivrcast.api.envelope import failure, success
from ivrcast.api.errors import UnknownService
from ivrcast.api.services import dnc, login, play_voice, records, tasks, voices
from ivrcast.errors import ValidationError

PLAY_VOICE = "App.Sip_Call.PlayVoice"
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE"]

Handler = Callable[[ApiContext, params.Params, str | None], Awaitable[dict[str, Any]]]

SERVICES: dict[str, Handler] = {
    PLAY_VOICE: play_voice.play_voice,
    "App.Sip_Call.TaskStatus": tasks.task_status,
    "App.Sip_Call.CancelTask": tasks.cancel,
    "App.Sip_Call.PauseTask": tasks.pause,
    "App.Sip_Call.ResumeTask": tasks.resume,
    "App.Sip_Voice.List": voices.voice_list,
    "App.Sip_Auth.Login": login.login,
    "App.Sip_Cdr.GetBill": records.get_bill,
    "App.Sip_Dnc.Add": dnc.add,
    "App.Sip_Dnc.Remove": dnc.remove,
    "App.Sip_Dnc.List": dnc.list_numbers,
}
UPLOAD_SERVICE = "App.Sip_Voice.Upload"
_BY_FOLDED_NAME = {name.lower(): name for name in [*SERVICES, UPLOAD_SERVICE]}

router = APIRouter(include_in_schema=False)


class RequestForm:
    """The fields of a request as strings, and the uploaded file's bytes if there is one."""

    def __init__(self, fields: dict[str, str], file: bytes | None) -> None:
        self.fields = fields
        self.file = file


async def read_form(request: Request, ctx: ApiContext) -> RequestForm:
    """The request's fields, whatever form they came in. The body's size and pace are
    bounded by `RequestLimits` before this reads it; this bounds its parts."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            raise ValidationError("body", "is not valid JSON") from None
        if not isinstance(body, dict):
            raise ValidationError("body", "must be a JSON object")
        return RequestForm({str(k): _as_text(v) for k, v in body.items()}, None)
    fields: dict[str, str] = {}
    file: bytes | None = None
    limit = ctx.settings.limits.max_upload_bytes
    form = await forms.read_form(request)
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                # One byte past the limit is enough to refuse the file without reading it all.
                file = await value.read(limit + 1)
            else:
                fields[key] = value
    finally:
        await form.close()
    return RequestForm(fields, file)


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return "" if value is None else str(value)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post("/api/yunhu")
@router.post("/api/yunhu/")
@router.post("/")
async def yunhu(request: Request) -> JSONResponse:
    ctx: ApiContext = request.app.state.ctx
    reqtime = int(ctx.clock.now().timestamp())
    service: str | None = None
    try:
        form = await read_form(request, ctx)
        service = service_named(form.fields)
        data = await dispatch(ctx, service, form, client_ip(request))
    except Exception as exc:  # every failure is answered in the envelope
        body = failure(exc, reqtime=reqtime, rsptime=int(ctx.clock.now().timestamp()))
    else:
        body = success(
            data,
            reqtime=reqtime,
            rsptime=int(ctx.clock.now().timestamp()),
            msg="successful request",
        )
    if service is not None and service != PLAY_VOICE:
        body = {"code": body["code"], "ret": body["code"], **body}
    return JSONResponse(body)


@router.api_route("/api/yunhu", methods=OTHER_METHODS)
@router.api_route("/api/yunhu/", methods=OTHER_METHODS)
@router.api_route("/api/cdrs", methods=OTHER_METHODS)
@router.api_route("/api/cdrs/", methods=OTHER_METHODS)
async def other_method(request: Request) -> JSONResponse:
    """The vendor's interface is POST only; clients that try another method still get the
    envelope they parse, naming what to change."""
    ctx: ApiContext = request.app.state.ctx
    now = int(ctx.clock.now().timestamp())
    refused = ValidationError(
        "method", f"{request.method} is not served; POST form-data or a URL-encoded form"
    )
    return JSONResponse(failure(refused, reqtime=now, rsptime=now))


def service_named(fields: params.Params) -> str:
    """The service's own name for the `service` field, which is matched without case."""
    requested = params.required(fields, "service")
    service = _BY_FOLDED_NAME.get(requested.lower())
    if service is None:
        raise UnknownService(requested)
    return service


async def dispatch(
    ctx: ApiContext, service: str, form: RequestForm, ip: str | None
) -> dict[str, Any]:
    if service == UPLOAD_SERVICE:
        return await voices.upload_voice(ctx, form.fields, form.file, ip)
    return await SERVICES[service](ctx, form.fields, ip)


@router.post("/api/cdrs")
@router.post("/api/cdrs/")
async def cdrs(request: Request) -> JSONResponse:
    ctx: ApiContext = request.app.state.ctx
    reqtime = int(ctx.clock.now().timestamp())
    try:
        form = await read_form(request, ctx)
        data = await records.cdrs(ctx, form.fields, client_ip(request))
    except Exception as exc:
        return JSONResponse(failure(exc, reqtime=reqtime, rsptime=int(ctx.clock.now().timestamp())))
    return JSONResponse({"code": 1, "msg": "ok", "data": data})
