"""REST `/v1`: the same operations as `/api/yunhu`, with HTTP statuses and OpenAPI.

Credentials travel in the `Authorization` header, as HTTP Basic (`appid:accesskey`) or as
a Bearer token from `POST /v1/token`. Bodies are JSON; each field has the meaning and the
validation of its `/api/yunhu` namesake, since both end in the same service functions.
Errors answer the status of `envelope.ERROR_TABLE` with `{"code", "msg"}`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from ivrcast.api import params
from ivrcast.api.context import ApiContext
from ivrcast.api.envelope import classify, details, public_message, reply_message
from ivrcast.api.errors import BadCredentials
from ivrcast.api.services import calls, dnc, login, play_voice, records, tasks, voices
from ivrcast.api.yunhu import client_ip
from ivrcast.store.calls import call_story, iter_calls, list_calls


class ErrorBody(BaseModel):
    """Every `/v1` error: a code of `ERROR_TABLE` and a message naming the parameter."""

    code: int = Field(description="The error's code (see the error table in docs/api.md)")
    msg: str = Field(description="What was wrong, starting with the parameter's name")


ERROR_MEANINGS = {
    400: "A parameter or the body is invalid; `msg` names it",
    401: "Credentials missing or wrong",
    403: "The account has expired or may not call from this address",
    404: "No such task or call for this account",
    408: "The body stopped arriving or took too long",
    409: "The task has ended, or a voice of this name exists",
    413: "The body is larger than its limit",
    422: "The voice could not be fetched, decoded or accepted",
}


ERROR_CONTENT = {"application/json": {"schema": ErrorBody.model_json_schema()}}
"""Inline, not a `model`: FastAPI would give a model the route's media type, and
the CSV export's errors are JSON all the same."""


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of `statuses`, each with the error body."""
    return {
        status: {"description": ERROR_MEANINGS[status], "content": ERROR_CONTENT}
        for status in statuses
    }


EVERY_ROUTE = (400, 408, 413)
"""Any request may be malformed, too large or too slow."""
AUTHENTICATED = (*EVERY_ROUTE, 401, 403)

router = APIRouter(prefix="/v1", tags=["v1"], responses=errors(*EVERY_ROUTE))


class CsvResponse(StreamingResponse):
    media_type = "text/csv"


CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"description": "One line per call, a header line first"}
}


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def credentials(request: Request) -> dict[str, str]:
    """The `Authorization` header as the parameters the services authenticate with."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return {"token": value.strip()}
    if scheme.lower() == "basic" and value:
        try:
            appid, _, accesskey = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise BadCredentials(
                "the Basic credentials are not base64 of appid:accesskey"
            ) from None
        return {"appid": appid, "accesskey": accesskey}
    raise BadCredentials("send Authorization: Basic base64(appid:accesskey) or Bearer TOKEN")


Credentials = Annotated[dict[str, str], Depends(credentials)]
Ctx = Annotated[ApiContext, Depends(_ctx)]


class TaskBody(BaseModel):
    """A broadcast: the `App.Sip_Call.PlayVoice` parameters as JSON."""

    model_config = ConfigDict(extra="forbid")

    nationcode: str = Field(examples=["id"])
    destnumber: str | list[str] = Field(
        description="Numbers, as a list or joined with `,` or `，`", examples=[["081234567890"]]
    )
    voicetype: int | str = Field(description="1: a voice from the library, 2: a URL")
    voicefile: str = Field(description="The voice's name, or its http(s) URL")
    userkey: int | str | None = None
    todayonly: int | str | None = None
    waittime: int | str | None = None
    conntime: int | str | None = None
    disnumber: str | None = None
    chengshudu: str | None = None
    customuuid: str | None = None
    record: int | str | None = Field(
        default=None,
        description="1: record every answered call (`recordurl` in its record); 0: do not; "
        "absent: the account's default",
    )
    amd: int | str | None = Field(default=None, description="1: detect answering machines")
    amdaction: str | None = Field(
        default=None, description="On a machine: hangup (default), play, or beep (voicemail drop)"
    )
    retries: int | str | None = Field(
        default=None, description="Extra rounds, 0-5 (absent: the account's default)"
    )
    retryinterval: int | str | None = Field(
        default=None, description="Minutes from a round's end to the next, 1-1440"
    )
    retryon: str | list[str] | None = Field(
        default=None, description="Outcomes retried: busy, no_answer, failed, rejected"
    )

    def as_params(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            fields[name] = ",".join(value) if isinstance(value, list) else str(value)
        return fields


class DncBody(BaseModel):
    """Numbers for the account's do-not-call list, written as `destnumber` is."""

    model_config = ConfigDict(extra="forbid")

    nationcode: str = Field(examples=["id"])
    numbers: str | list[str] = Field(examples=[["081234567890"]])

    def as_params(self) -> dict[str, str]:
        numbers = ",".join(self.numbers) if isinstance(self.numbers, list) else self.numbers
        return {"nationcode": self.nationcode, "numbers": numbers}


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    appid: str
    accesskey: str


@router.post(
    "/token", summary="Exchange appid and accesskey for a token", responses=errors(401, 403)
)
async def create_token(body: TokenBody, request: Request, ctx: Ctx) -> dict[str, Any]:
    return await login.login(ctx, body.model_dump(), client_ip(request))


@router.post(
    "/tasks", status_code=201, summary="Submit a broadcast", responses=errors(*AUTHENTICATED, 422)
)
async def create_task(
    body: TaskBody, request: Request, ctx: Ctx, auth: Credentials
) -> dict[str, Any]:
    return await play_voice.play_voice(ctx, {**body.as_params(), **auth}, client_ip(request))


@router.get(
    "/tasks/{taskid}",
    summary="A task's progress: calls by state",
    responses=errors(*AUTHENTICATED, 404),
)
async def get_task(taskid: str, request: Request, ctx: Ctx, auth: Credentials) -> dict[str, Any]:
    return await tasks.task_status(ctx, {"taskid": taskid, **auth}, client_ip(request))


@router.post(
    "/tasks/{taskid}/cancel",
    summary="Cancel what is still queued",
    responses=errors(*AUTHENTICATED, 404, 409),
)
async def cancel_task(taskid: str, request: Request, ctx: Ctx, auth: Credentials) -> dict[str, Any]:
    return await tasks.cancel(ctx, {"taskid": taskid, **auth}, client_ip(request))


@router.post(
    "/tasks/{taskid}/pause",
    summary="Pause: claim no new call until resumed",
    responses=errors(*AUTHENTICATED, 404, 409),
)
async def pause_task(taskid: str, request: Request, ctx: Ctx, auth: Credentials) -> dict[str, Any]:
    return await tasks.pause(ctx, {"taskid": taskid, **auth}, client_ip(request))


@router.post(
    "/tasks/{taskid}/resume",
    summary="Resume a paused task",
    responses=errors(*AUTHENTICATED, 404, 409),
)
async def resume_task(taskid: str, request: Request, ctx: Ctx, auth: Credentials) -> dict[str, Any]:
    return await tasks.resume(ctx, {"taskid": taskid, **auth}, client_ip(request))


@router.get(
    "/dnc",
    summary="The account's do-not-call list, a page in number order",
    responses=errors(*AUTHENTICATED),
)
async def list_dnc(
    request: Request,
    ctx: Ctx,
    auth: Credentials,
    limit: int | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    query = {"limit": str(limit or ""), "cursor": cursor or ""}
    return await dnc.list_numbers(ctx, {**query, **auth}, client_ip(request))


@router.post(
    "/dnc",
    summary="Add numbers to the account's do-not-call list",
    responses=errors(*AUTHENTICATED),
)
async def add_dnc(body: DncBody, request: Request, ctx: Ctx, auth: Credentials) -> dict[str, Any]:
    return await dnc.add(ctx, {**body.as_params(), **auth}, client_ip(request))


@router.post(
    "/dnc/remove",
    summary="Remove numbers from the account's do-not-call list",
    responses=errors(*AUTHENTICATED),
)
async def remove_dnc(
    body: DncBody, request: Request, ctx: Ctx, auth: Credentials
) -> dict[str, Any]:
    return await dnc.remove(ctx, {**body.as_params(), **auth}, client_ip(request))


@router.get("/voices", summary="The voice library", responses=errors(*AUTHENTICATED))
async def list_voices(request: Request, ctx: Ctx, auth: Credentials) -> dict[str, Any]:
    return await voices.voice_list(ctx, auth, client_ip(request))


@router.post(
    "/voices",
    status_code=201,
    summary="Upload a voice (any common audio format)",
    responses=errors(*AUTHENTICATED, 409, 422),
    form_limits={"max_files": 1, "max_fields": 8},
)
async def upload_voice(
    request: Request,
    ctx: Ctx,
    auth: Credentials,
    name: Annotated[str, Form()],
    file: Annotated[UploadFile, File()],
) -> dict[str, Any]:
    data = await file.read(ctx.settings.limits.max_upload_bytes + 1)
    return await voices.upload_voice(ctx, {"name": name, **auth}, data, client_ip(request))


@router.get(
    "/records",
    summary="Pull call records (syncflag as in App.Sip_Cdr.GetBill)",
    responses=errors(*AUTHENTICATED),
)
async def pull_records(
    request: Request,
    ctx: Ctx,
    auth: Credentials,
    syncflag: Annotated[int, Query(ge=1, le=3)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    form = {"syncflag": str(syncflag), "limit": str(limit), **auth}
    return await records.get_bill(ctx, form, client_ip(request))


@router.get(
    "/calls",
    summary="Calls, newest first, filtered; follow `next_cursor` for more",
    responses=errors(*AUTHENTICATED),
)
async def get_calls(
    request: Request,
    ctx: Ctx,
    auth: Credentials,
    task: str | None = None,
    status: str | None = None,
    number: str | None = None,
    since: Annotated[str | None, Query(description="ISO 8601, e.g. 2026-11-26T00:00:00Z")] = None,
    until: str | None = None,
    cursor: Annotated[int | None, Query(ge=1, le=params.MAX_INTEGER)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    query = _present(task=task, status=status, number=number, since=since, until=until)

    def read() -> list[dict[str, Any]]:
        account = ctx.account_from(auth, client_ip(request))
        where = calls.call_filter(account.id, query)
        with ctx.db.read() as conn:
            return list_calls(conn, where, before_id=cursor, limit=limit)

    rows = await ctx.in_thread(read)
    next_cursor = rows[-1]["id"] if len(rows) == limit else None
    return {"calls": [calls.describe_call(r) for r in rows], "next_cursor": next_cursor}


@router.get(
    "/calls.csv",
    summary="Every matching call as CSV, streamed",
    response_class=CsvResponse,
    responses=errors(*AUTHENTICATED) | CSV_ANSWER,
)
async def export_calls(
    request: Request,
    ctx: Ctx,
    auth: Credentials,
    task: str | None = None,
    status: str | None = None,
    number: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> CsvResponse:
    query = _present(task=task, status=status, number=number, since=since, until=until)
    account = await ctx.in_thread(lambda: ctx.account_from(auth, client_ip(request)))
    where = calls.call_filter(account.id, query)
    return CsvResponse(
        calls.csv_lines(iter_calls(ctx.db, where)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="calls.csv"'},
    )


@router.get(
    "/calls/{uuid}",
    summary="One call: its states, its record, its delivery",
    responses=errors(*AUTHENTICATED, 404),
)
async def get_call(uuid: str, request: Request, ctx: Ctx, auth: Credentials) -> dict[str, Any]:
    def read() -> dict[str, Any] | None:
        account = ctx.account_from(auth, client_ip(request))
        with ctx.db.read() as conn:
            return call_story(conn, account.id, uuid)

    story = await ctx.in_thread(read)
    if story is None:
        raise calls.CallNotFound(f"uuid: no call {uuid!r}")
    return {
        "call": calls.describe_call(story["call"]),
        "record": json.loads(story["record"]["payload"]) if story["record"] else None,
        "delivery": calls.describe_call(story["delivery"]) if story["delivery"] else None,
    }


def _present(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}


async def error_response(request: Request, exc: Exception) -> JSONResponse:
    entry = classify(exc)
    return JSONResponse(
        {"code": entry.code, "msg": public_message(exc, entry), **details(exc)},
        status_code=entry.http_status,
    )


async def http_error_response(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (an unparseable body, an unknown path) in `/v1`'s shape;
    elsewhere as FastAPI answers them."""
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith("/v1/"):
        return await http_exception_handler(request, exc)
    message = exc.detail if exc.status_code != 400 else f"body: {exc.detail}"
    return JSONResponse(
        {"code": exc.status_code, "msg": message}, status_code=exc.status_code, headers=exc.headers
    )


async def validation_error_response(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own body checks, worded like ours: the first error, naming its field."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    name = ".".join(location) or "body"
    message = reply_message(f"{name}: {first.get('msg')}")
    return JSONResponse({"code": 400, "msg": message}, status_code=400)
