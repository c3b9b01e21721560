"""`App.Sip_Call.PlayVoice`: validate a batch, store the task and its calls, answer.

Cheap parameters are checked first and the voice (a lookup, or a download for
`voicetype=2`) last, so a bad request is refused before any expensive work, and the error
names the first parameter at fault in the seed's order of importance.

A library voice (`voicetype=1`) is looked up in the writing transaction, and on
PostgreSQL, unless a do-not-call list could hold them, the numbers are decided while
their calls are written (see `_store_task`). Every refusal is the one the order above
gives, and leaves nothing written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ivrcast.api import params
from ivrcast.api.context import ApiContext
from ivrcast.api.errors import NationNotAllowed, NoCallableNumbers
from ivrcast.api.services.voice_errors import voice_errors_for
from ivrcast.errors import ValidationError
from ivrcast.numbers import InvalidEntry, Nation, NumberStream, ParsedNumbers, get_nation
from ivrcast.store import dnc
from ivrcast.store.accounts import Account
from ivrcast.store.engine import Connection, IntegrityViolation
from ivrcast.store.tables import RETRYABLE_STATES
from ivrcast.store.tasks import (
    RETRIES_MAX,
    NewTask,
    RetryPolicy,
    create_task,
    create_task_streamed,
    find_task_by_request_id,
    set_task_counts,
    streams_calls,
)
from ivrcast.store.voices import VoiceInfo, VoiceNotFound, find_voice_by_name
from ivrcast.voices.library import voice_from_url

logger = logging.getLogger(__name__)

VOICETYPES = {1: "offline voice file", 2: "online voice URL"}
USERKEYS = {0: "no key press", 1: "collect a key press"}
TODAYONLY = {1: "dial only today", 2: "carry over to the next day"}
RECORD = {0: "do not record", 1: "record answered calls"}
AMD = {0: "no answering-machine detection", 1: "detect answering machines"}
AMD_ACTIONS = ("hangup", "play", "beep")

# What a SIP From user part can carry; trunks decide which values they accept.
_CALLER_ID = re.compile(r"[A-Za-z0-9+*#._-]{1,32}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
RETRY_INTERVAL_MAX = 1440  # minutes: one day
DEFAULT_RETRYON = "busy,no_answer"
AUDIO_EXTENSIONS = frozenset({"mp3", "wav", "ogg", "opus", "m4a", "aac", "flac", "amr", "gsm"})


@dataclass(frozen=True)
class PlayVoiceRequest:
    nation: Nation
    voicetype: int
    voicefile: str
    userkey: bool
    todayonly: int
    waittime: int
    conntime: int | None
    disnumber: str | None
    chengshudu: str
    customuuid: str
    destnumber: str
    requestid: str | None
    retry: RetryPolicy
    record: bool = False
    amd: bool = False
    amdaction: str | None = None


def read_retry_policy(form: params.Params, *, default_retries: int = 0) -> RetryPolicy:
    """`retries` (absent: the account's default, 0 unless set), `retryinterval`
    (minutes) and `retryon`."""
    retries = params.integer(
        form, "retries", default=min(default_retries, RETRIES_MAX), low=0, high=RETRIES_MAX
    )
    interval = params.integer(form, "retryinterval", default=30, low=1, high=RETRY_INTERVAL_MAX)
    raw = params.optional(form, "retryon") or DEFAULT_RETRYON
    outcomes = [item.strip().lower() for item in raw.replace("，", ",").split(",")]
    unknown = [item for item in outcomes if item not in RETRYABLE_STATES]
    if unknown or not any(outcomes):
        raise ValidationError(
            "retryon",
            f"must be a comma list of {', '.join(RETRYABLE_STATES)}; got {raw!r}",
        )
    ordered = [state for state in RETRYABLE_STATES if state in outcomes]
    return RetryPolicy(retries=retries, interval_minutes=interval, on=tuple(ordered))


def read_request(ctx: ApiContext, account: Account, form: params.Params) -> PlayVoiceRequest:
    limits = ctx.settings.limits
    nation = get_nation(params.required(form, "nationcode").lower())
    if not account.may_call(nation.code):
        raise NationNotAllowed(nation.code)
    voicetype = params.choice(form, "voicetype", VOICETYPES, default=None)
    voicefile = params.required(form, "voicefile")
    if voicetype == 2 and not re.match(r"(?i)https?://", voicefile):
        raise ValidationError("voicefile", "an online voice must be an http:// or https:// URL")
    userkey = params.choice(form, "userkey", USERKEYS, default=0)
    todayonly = params.choice(form, "todayonly", TODAYONLY, default=1)
    waittime = params.integer(
        form, "waittime", default=limits.waittime_default, low=1, high=limits.waittime_max
    )
    conntime = (
        params.integer(form, "conntime", default=0, low=1, high=limits.conntime_max)
        if params.optional(form, "conntime")
        else None
    )
    chengshudu = params.text(form, "chengshudu", max_bytes=limits.custom_field_max)
    customuuid = params.text(form, "customuuid", max_bytes=limits.custom_field_max)
    disnumber = params.optional(form, "disnumber")
    if disnumber is not None:
        check_caller_id(ctx, account, nation.code, disnumber)
    requestid = params.optional(form, "requestid")
    if requestid is not None and not _REQUEST_ID.fullmatch(requestid):
        raise ValidationError("requestid", "must be 1 to 64 letters, digits or _ . : - characters")
    # Absent: the account's default; an explicit record=0 still turns recording off.
    record = params.choice(form, "record", RECORD, default=1 if account.default_record else 0)
    amd = params.choice(form, "amd", AMD, default=0) == 1
    amdaction = params.optional(form, "amdaction")
    if amdaction is not None and amdaction not in AMD_ACTIONS:
        raise ValidationError("amdaction", f"must be hangup, play or beep; got {amdaction!r}")
    if amdaction is not None and not amd:
        raise ValidationError("amdaction", "applies only with amd=1")
    if "destnumber" not in form:
        raise ValidationError("destnumber", "is required")
    return PlayVoiceRequest(
        nation=nation,
        voicetype=voicetype,
        voicefile=voicefile,
        userkey=userkey == 1,
        todayonly=todayonly,
        waittime=waittime,
        conntime=conntime,
        disnumber=disnumber,
        chengshudu=chengshudu,
        customuuid=customuuid,
        destnumber=form["destnumber"],
        requestid=requestid,
        record=record == 1,
        amd=amd,
        amdaction=(amdaction or "hangup") if amd else None,
        retry=read_retry_policy(form, default_retries=account.default_retries),
    )


def check_caller_id(ctx: ApiContext, account: Account, nationcode: str, disnumber: str) -> None:
    """`disnumber` must be one the account may present: its own caller IDs or the pools of
    the trunks serving the nation. Where neither lists any (the demo carrier), any well-formed
    value is accepted, since there is nothing to check it against."""
    if not _CALLER_ID.fullmatch(disnumber):
        raise ValidationError(
            "disnumber", "must be 1 to 32 letters, digits or + * # . _ - characters"
        )
    allowed = set(account.callerids)
    for trunk in ctx.settings.trunks:
        if nationcode in trunk.countries:
            allowed.update(trunk.callerids)
    if allowed and disnumber.lstrip("+") not in {c.lstrip("+") for c in allowed}:
        raise ValidationError("disnumber", f"{disnumber!r} is not a caller ID this account may use")


def local_zone(ctx: ApiContext, nation: Nation) -> str:
    """The nation's zone for "today": `[countries.XX] timezone` when set, as the dialer reads it."""
    return ctx.settings.country(nation.code).timezone or nation.timezone


def default_conntime(ctx: ApiContext, voice: VoiceInfo, request: PlayVoiceRequest) -> int:
    """Long enough to play the voice and wait for a key, and no longer; with detection,
    also its longest listening before the voice starts (and the wait for a beep)."""
    limits = ctx.settings.limits
    amd = ctx.settings.amd
    listening_ms = 0
    if request.amd:
        listening_ms = amd.total_ms
        if request.amdaction == "beep":
            listening_ms += amd.beep_timeout_ms
    seconds = (
        voice.duration_ms / 1000
        + (limits.key_wait_seconds if request.userkey else 0)
        + listening_ms / 1000
        + 1
    )
    return min(limits.conntime_max, math.ceil(seconds))


async def play_voice(ctx: ApiContext, form: params.Params, client_ip: str | None) -> dict[str, Any]:
    if _voicetype_sent(form) == 1:
        # Everything is blocking work (lookups, parsing, the write), so it runs in one
        # worker thread rather than hopping between it and the loop: each hop is a
        # wake-up that waits for a core when the machine is busy.
        return await ctx.in_thread(lambda: _play_stored_voice(ctx, form, client_ip))
    account = await ctx.in_thread(lambda: ctx.account_from(form, client_ip))

    def check() -> dict[str, Any] | tuple[PlayVoiceRequest, NumberStream]:
        checked = _checked(ctx, account, form)
        if not isinstance(checked, dict):
            _decide_all(ctx, checked[1])  # before the voice, which may be a download
        return checked

    checked = await ctx.in_thread(check)
    if isinstance(checked, dict):
        return checked
    request, numbers = checked
    voice = await resolve_voice(ctx, account, request)
    return await ctx.in_thread(lambda: _store(ctx, account, request, numbers, voice))


def _voicetype_sent(form: params.Params) -> int | None:
    """`voicetype` if it is a well-formed 1 or 2; `read_request` words any other value."""
    raw = form.get("voicetype", "").strip()
    return int(raw) if raw in ("1", "2") else None


def _play_stored_voice(
    ctx: ApiContext, form: params.Params, client_ip: str | None
) -> dict[str, Any]:
    """`play_voice` for a voice from the library (`voicetype=1`), in the worker thread.
    On PostgreSQL the numbers may be decided while they are written (`_store_task`)."""
    account = ctx.account_from(form, client_ip)
    checked = _checked(ctx, account, form)
    if isinstance(checked, dict):
        return checked
    request, numbers = checked
    if request.requestid is not None or not streams_calls(ctx.db):
        # A retry racing this request is answered by the writing transaction, before
        # any number is written: the refusal of a batch without a callable number
        # must come first, as it always has. And where calls are not written as their
        # numbers come (SQLite), deciding them in the transaction would only hold the
        # database's one write lock longer.
        _decide_all(ctx, numbers)
    return _store(ctx, account, request, numbers, None)


def _checked(
    ctx: ApiContext, account: Account, form: params.Params
) -> dict[str, Any] | tuple[PlayVoiceRequest, NumberStream]:
    """The request read and its numbers split (not yet decided), or the answer of the
    task an earlier request with the same `requestid` made. Blocking (that lookup)."""
    request = read_request(ctx, account, form)
    if request.requestid is not None:
        earlier = _earlier_task(ctx, account, request)
        if earlier is not None:
            return earlier
    numbers = NumberStream(
        request.destnumber, request.nation, limit=ctx.settings.limits.max_numbers
    )
    return request, numbers


def _decide_all(ctx: ApiContext, numbers: NumberStream) -> ParsedNumbers:
    """Every number decided; raises `NoCallableNumbers` when none can be called."""
    parsed = numbers.decide_all()
    if not parsed.valid:
        raise NoCallableNumbers(listed_invalid(ctx, parsed.invalid), len(parsed.invalid))
    return parsed


def _store(
    ctx: ApiContext,
    account: Account,
    request: PlayVoiceRequest,
    numbers: NumberStream,
    voice: VoiceInfo | None,
) -> dict[str, Any]:
    """Write the task and its calls and answer; blocking. `voice` None: the library voice
    `voicefile` names, looked up in the writing transaction (on PostgreSQL a transaction
    of its own costs two more round trips)."""
    try:
        with ctx.db.write() as conn:
            if voice is None:
                voice = _library_voice(ctx, conn, account, request, numbers)
            stored = _store_task(ctx, conn, account, request, numbers, voice)
    except IntegrityViolation:
        # PostgreSQL lets two transactions check at once; the unique key decides.
        earlier = _earlier_task(ctx, account, request)
        if earlier is None:
            raise
        return earlier
    if not stored["replayed"]:
        # One line per task, not per number: the dialer logs each call with its task_id.
        logger.info(
            "task created: %d numbers",
            stored["accepted"],
            extra={
                "event": "api.task_created",
                "task_id": stored["taskid"],
                "account_id": account.id,
            },
        )
    return stored


def _library_voice(
    ctx: ApiContext,
    conn: Connection,
    account: Account,
    request: PlayVoiceRequest,
    numbers: NumberStream,
) -> VoiceInfo:
    try:
        return find_named_voice(conn, account.id, request.voicefile)
    except VoiceNotFound:
        # A batch without a callable number is refused as such, whatever its voice.
        _decide_all(ctx, numbers)
        raise


def _store_task(
    ctx: ApiContext,
    conn: Connection,
    account: Account,
    request: PlayVoiceRequest,
    numbers: NumberStream,
    voice: VoiceInfo,
) -> dict[str, Any]:
    now = ctx.clock.now()
    # Checked again in the writing transaction: a retry may have raced us here.
    if request.requestid is not None:
        task = find_task_by_request_id(conn, account.id, request.requestid)
        if task is not None:
            return answer(task, replayed=True)
    if numbers.undecided and not dnc.any_listed(conn, account.id):
        # Still undecided only where calls stream to the server (`_play_stored_voice`),
        # and no list can hold any of them, so the numbers are decided while the calls
        # are written: the server stores one chunk while the next is parsed. The task row
        # goes first, counted as a clean list ends (every item accepted), and is
        # corrected when the list ends otherwise; a batch without a callable number is
        # refused then, and the transaction leaves nothing behind.
        expected = _new_task(ctx, account, request, voice, None, now=now)
        task_id = create_task_streamed(conn, expected, numbers, now=now, total=len(numbers.items))
        parsed = numbers.parsed()
        if not parsed.valid:
            raise NoCallableNumbers(listed_invalid(ctx, parsed.invalid), len(parsed.invalid))
        queued = _new_task(ctx, account, request, voice, parsed, now=now)
        if len(parsed.valid) != len(numbers.items):
            set_task_counts(conn, task_id, queued, now=now)
    else:
        parsed = _decide_all(ctx, numbers)
        new_task = _new_task(ctx, account, request, voice, parsed, now=now)
        # In the writing transaction: a number listed before this commits is not queued.
        queued = without_listed(new_task, dnc.listed(conn, account.id, new_task.numbers))
        task_id = create_task(conn, queued, now=now)
    return {
        "desc": "Play command sent successfully",
        "taskid": task_id,
        "accepted": len(queued.numbers),
        "duplicates": parsed.duplicates,
        "suppressed": queued.suppressed,
        "invalid": listed_invalid(ctx, parsed.invalid),
        "invalidcount": len(parsed.invalid),
        "replayed": False,
    }


def _new_task(
    ctx: ApiContext,
    account: Account,
    request: PlayVoiceRequest,
    voice: VoiceInfo,
    parsed: ParsedNumbers | None,
    *,
    now: datetime,
) -> NewTask:
    """The task `request` asks for; `parsed` None: its numbers not decided yet."""
    return NewTask(
        account_id=account.id,
        nationcode=request.nation.code,
        voice_id=voice.id,
        numbers=parsed.valid if parsed else (),
        submitted_numbers=parsed.submitted if parsed else None,
        userkey=request.userkey,
        todayonly=request.todayonly,
        waittime=request.waittime,
        conntime=request.conntime or default_conntime(ctx, voice, request),
        disnumber=request.disnumber,
        chengshudu=request.chengshudu,
        customuuid=request.customuuid,
        duplicates=parsed.duplicates if parsed else 0,
        invalid=len(parsed.invalid) if parsed else 0,
        local_day=now.astimezone(ZoneInfo(local_zone(ctx, request.nation))).date(),
        invalid_entries=listed_invalid(ctx, parsed.invalid) if parsed else (),
        request_id=request.requestid,
        record=request.record,
        amd=request.amd,
        amdaction=request.amdaction,
        retry=request.retry,
    )


def without_listed(task: NewTask, listed: set[str]) -> NewTask:
    """The task without the numbers a do-not-call list holds, counted as `suppressed`."""
    if not listed:
        return task
    keep = [index for index, number in enumerate(task.numbers) if number not in listed]
    submitted = task.submitted_numbers
    return dataclasses.replace(
        task,
        numbers=[task.numbers[index] for index in keep],
        submitted_numbers=None if submitted is None else [submitted[index] for index in keep],
        suppressed=len(task.numbers) - len(keep),
    )


def _earlier_task(
    ctx: ApiContext, account: Account, request: PlayVoiceRequest
) -> dict[str, Any] | None:
    assert request.requestid is not None
    with ctx.db.read() as conn:
        task = find_task_by_request_id(conn, account.id, request.requestid)
    return None if task is None else answer(task, replayed=True)


async def resolve_voice(ctx: ApiContext, account: Account, request: PlayVoiceRequest) -> VoiceInfo:
    if request.voicetype == 2:
        with voice_errors_for("voicefile"):
            return await voice_from_url(
                ctx.db,
                ctx.settings,
                ctx.transcoder,
                account_id=account.id,
                url=request.voicefile,
                now=ctx.clock.now(),
            )

    def find() -> VoiceInfo:
        with ctx.db.read() as conn:
            return find_named_voice(conn, account.id, request.voicefile)

    return await ctx.in_thread(find)


def find_named_voice(conn: Connection, account_id: int, voicefile: str) -> VoiceInfo:
    """The library voice `voicefile` names (see `voice_names`)."""
    for name in voice_names(voicefile):
        voice = find_voice_by_name(conn, account_id, name)
        if voice is not None:
            return voice
    raise VoiceNotFound(f"voicefile: no voice named {voicefile!r}; upload it first")


def voice_names(voicefile: str) -> list[str]:
    """The names `voicefile` may mean: itself, then without an audio file extension. The
    vendor's back office names voices by their file (`promo_voice.mp3`), and its clients
    send that name; the same voice uploaded here is often named without it."""
    stem, dot, extension = voicefile.rpartition(".")
    if dot and stem and extension.lower() in AUDIO_EXTENSIONS:
        return [voicefile, stem]
    return [voicefile]


def answer(task: dict[str, Any], *, replayed: bool) -> dict[str, Any]:
    """The answer a task was created with, rebuilt from its row for a retried request."""
    return {
        "desc": "Play command sent successfully",
        "taskid": task["id"],
        "accepted": task["total"],
        "duplicates": task["duplicates"],
        "suppressed": task["suppressed"],
        "invalid": json.loads(task["invalid_entries"]),
        "invalidcount": task["invalid"],
        "replayed": replayed,
    }


def listed_invalid(ctx: ApiContext, entries: list[InvalidEntry]) -> list[dict[str, str]]:
    """The invalid items as kept with the task and echoed: the first `invalid_listed_max`,
    each cut to `invalid_number_chars` characters. A megabyte of garbage in `destnumber`
    is refused item by item, and must not be stored and sent back on every read."""
    limits = ctx.settings.limits
    return [
        {"number": entry.number[: limits.invalid_number_chars], "reason": entry.reason}
        for entry in entries[: limits.invalid_listed_max]
    ]
