"""The reply envelope of `/api/yunhu`, and the one table mapping errors to codes.

Every interface (the vendor-compatible `/api/yunhu`, REST `/v1`, the console) answers an
error through `classify`: it walks the exception's MRO and takes the first class listed
in `ERROR_TABLE`, so a new subclass inherits its family's code until it is given one of
its own. `docs/api.md` reproduces the table, and a test keeps the two equal.

The vendor has two forms. An interface error (bad parameter, bad credentials, server
error) is a global `code` other than 200 with empty `data`. A valid request that could
not be carried out answers `code` 200 with `data.status` 1 and `data.errors{code, codemsg}`
in the vendor's 10xx style: 1001–1029 are the vendor's, and ivrcast's own codes of
that kind start at 1101 (`OWN_CODES_FROM`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from ivrcast.api.errors import (
    AccountExpired,
    BadCredentials,
    BadRecordingLink,
    BodyTooLarge,
    BodyTooSlow,
    IpNotAllowed,
    NationNotAllowed,
    NoCallableNumbers,
    TaskEnded,
    TaskNotPaused,
    TaskPaused,
    TokenInvalid,
    TooManyFailedSignIns,
    WithDetails,
)
from ivrcast.errors import (
    AuthError,
    ConflictError,
    IvrcastError,
    NotFoundError,
    ValidationError,
    VoiceError,
)
from ivrcast.store.tasks import TaskNotFound
from ivrcast.store.voices import VoiceExists, VoiceNotFound, VoiceStorageFull

logger = logging.getLogger(__name__)

Form = Literal["global", "status"]

OWN_CODES_FROM = 1101
"""The first of ivrcast's own `status` codes; `docs/api.md` says the same."""


@dataclass(frozen=True)
class ErrorCode:
    code: int
    form: Form
    http_status: int
    """The status REST `/v1` answers with (`/api/yunhu` always answers HTTP 200)."""
    meaning: str


ERROR_TABLE: dict[type[BaseException], ErrorCode] = {
    ValidationError: ErrorCode(400, "global", 400, "invalid parameter (the message names it)"),
    BodyTooLarge: ErrorCode(400, "global", 413, "request body larger than its limit"),
    BodyTooSlow: ErrorCode(400, "global", 408, "request body arrived too slowly"),
    TokenInvalid: ErrorCode(600, "global", 401, "token invalid, log in again"),
    BadCredentials: ErrorCode(601, "global", 401, "appid not authorized"),
    AccountExpired: ErrorCode(602, "global", 403, "appid authorization expired"),
    NationNotAllowed: ErrorCode(603, "global", 403, "module not licensed (nation not enabled)"),
    IpNotAllowed: ErrorCode(604, "global", 403, "IP not authorized"),
    TooManyFailedSignIns: ErrorCode(
        601, "global", 429, "too many failed sign-ins for this appid from this address"
    ),
    BadRecordingLink: ErrorCode(
        601, "global", 403, "recording link altered or expired (`expires`, `sig`)"
    ),
    AuthError: ErrorCode(601, "global", 401, "appid not authorized"),
    NoCallableNumbers: ErrorCode(1021, "status", 422, "illegal number: none can be called"),
    TaskNotFound: ErrorCode(1024, "status", 404, "task does not exist"),
    TaskEnded: ErrorCode(1028, "status", 409, "task ended"),
    TaskPaused: ErrorCode(1027, "status", 409, "task paused"),
    TaskNotPaused: ErrorCode(1026, "status", 409, "task in progress (not paused)"),
    VoiceNotFound: ErrorCode(1029, "status", 404, "voice file does not exist"),
    VoiceError: ErrorCode(1029, "status", 422, "voice file could not be fetched or used"),
    NotFoundError: ErrorCode(1003, "status", 404, "operation failed: not found"),
    VoiceExists: ErrorCode(1101, "status", 409, "a voice with this name exists"),
    VoiceStorageFull: ErrorCode(
        1102, "status", 409, "the account's voice storage quota is used up"
    ),
    ConflictError: ErrorCode(1003, "status", 409, "operation failed"),
    IvrcastError: ErrorCode(500, "global", 500, "server error"),
    BaseException: ErrorCode(500, "global", 500, "server error"),
}

SERVER_ERROR_MESSAGE = "server error"


def classify(exc: BaseException) -> ErrorCode:
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    raise AssertionError("BaseException is in the table")


def public_message(exc: BaseException, entry: ErrorCode) -> str:
    """The message the client sees: ours for expected errors, a generic one otherwise.

    Server errors are logged with their traceback and never leak internals to clients.
    """
    if entry.code == 500:
        logger.error("request failed", exc_info=exc)
        return SERVER_ERROR_MESSAGE
    return reply_message(exc.message if isinstance(exc, IvrcastError) else str(exc))


def reply_message(text: str) -> str:
    """Every message an interface answers, worded alike: no closing full stop (the
    vendor's never have one; docstrings, the default messages, do)."""
    return text.removesuffix(".") if not text.endswith("..") else text


def details(exc: BaseException) -> dict[str, Any]:
    """What an error adds to its reply beside the message (see `WithDetails`)."""
    return dict(exc.details) if isinstance(exc, WithDetails) else {}


def success(data: dict[str, Any], *, reqtime: int, rsptime: int, msg: str) -> dict[str, Any]:
    return {"code": 200, "msg": msg, "data": {**data, "reqtime": reqtime, "rsptime": rsptime}}


def failure(exc: BaseException, *, reqtime: int, rsptime: int) -> dict[str, Any]:
    entry = classify(exc)
    message = public_message(exc, entry)
    if entry.form == "global":
        return {"code": entry.code, "msg": message, "data": {}}
    return {
        "code": 200,
        "msg": "successful request",
        "data": {
            "status": 1,
            "desc": message,
            "errors": {"code": entry.code, "codemsg": message},
            **details(exc),
            "reqtime": reqtime,
            "rsptime": rsptime,
        },
    }
