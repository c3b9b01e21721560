"""What a call came to: `CallOutcome`, progress `CallEvent`s, and the one table that
maps SIP responses, timers and our own hang-ups onto a final status and the vendor's
hang-up codes (`ivrcast.hangup`; `docs/telephony.md` documents the same table).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Literal

from ivrcast.hangup import (
    BAD_REQUEST,
    BY_CALLEE,
    BY_CALLER,
    CALL_BARRED,
    CALL_INVALID,
    CANCELLED,
    LINE_FAILED,
    NO_ANSWER,
    NORMAL,
    NOT_FOUND,
    NUMBER_CHANGED,
    OTHER,
    REJECTED,
    REQUEST_TIMEOUT,
    TIMER_EXPIRED,
    USER_BUSY,
    USER_NO_ANSWER,
)

Status = Literal["completed", "busy", "no_answer", "failed", "rejected", "machine"]
EventKind = Literal["ringing", "answered", "key", "hangup"]
HangupBy = Literal["callee", "us"]


class LocalEnd(Enum):
    """Why we ended a call ourselves; each has a row in the outcome table."""

    AUDIO_DONE = "audio_done"  # voice played (and key wait over, or a key came)
    KEY = "key"  # a key pressed after the voice ended the wait early
    CONN_TIME = "conn_time"  # the answered-time limit
    NO_RTP = "no_rtp"  # the far end sent no RTP for no_rtp_timeout
    NO_CODEC = "no_codec"  # the 2xx answer had no codec we offered
    RING_TIMEOUT = "ring_timeout"  # wait_time elapsed while ringing: CANCEL
    STOPPED = "stopped"  # the engine is shutting down
    MACHINE = "machine"  # an answering machine answered, and amdaction=hangup


@dataclass(frozen=True)
class CallEvent:
    kind: EventKind
    at: datetime
    call_uuid: str
    key: str | None = None
    sip_code: int | None = None


@dataclass(frozen=True)
class CallOutcome:
    status: Status
    sip_code: int | None
    sip_reason: str
    q850_cause: int | None
    invited_at: datetime | None
    ringing_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    hangup_by: HangupBy | None
    hangup_cause: int
    hangup_direction: int
    keys: str = ""
    codec: str | None = None
    rtp_sent: int = 0
    rtp_received: int = 0
    rtp_lost: int = 0
    rtp_rejected: int = 0  # packets dropped for coming from another source than the far end
    trunk_failed: bool = False
    call_id: str = ""
    recorded: bool = False  # a recording of the call was written (CallRequest.record_to)
    answered_by: Literal["human", "machine", "unknown"] | None = None  # detection's verdict
    amd_ms: int | None = None  # how long detection took, from the answer


@dataclass(frozen=True)
class Verdict:
    status: Status
    cause: int
    direction: int


# SIP final responses to the INVITE. Failures come from the far side, so their direction
# is "callee" (10041). Codes not listed fall back by class in `verdict_for_response`.
RESPONSE_TABLE: dict[int, tuple[Status, int]] = {
    400: ("failed", BAD_REQUEST),
    401: ("failed", LINE_FAILED),  # still challenged after our credentials
    403: ("rejected", CALL_BARRED),
    404: ("failed", NOT_FOUND),
    407: ("failed", LINE_FAILED),
    408: ("no_answer", REQUEST_TIMEOUT),
    410: ("failed", NUMBER_CHANGED),
    480: ("no_answer", USER_NO_ANSWER),
    484: ("failed", CALL_INVALID),
    486: ("busy", USER_BUSY),
    487: ("failed", CANCELLED),  # cancelled, but not by us
    488: ("failed", OTHER),
    600: ("busy", USER_BUSY),
    603: ("rejected", REJECTED),
    604: ("failed", NOT_FOUND),
    606: ("failed", OTHER),
    607: ("rejected", REJECTED),
    608: ("rejected", REJECTED),
}
# A Q.850 cause in a Reason header (RFC 3326) says more than the SIP code a gateway
# chose for it, for the few causes that mean a user's state.
Q850_TABLE: dict[int, tuple[Status, int]] = {
    1: ("failed", NOT_FOUND),  # unallocated number
    17: ("busy", USER_BUSY),
    18: ("no_answer", NO_ANSWER),  # no user responding
    19: ("no_answer", USER_NO_ANSWER),  # no answer from user (alerted)
    21: ("rejected", REJECTED),
    22: ("failed", NUMBER_CHANGED),
}


def verdict_for_response(code: int, q850: int | None) -> Verdict:
    """Status and codes for a final non-2xx response to our INVITE."""
    if q850 in Q850_TABLE:
        status, cause = Q850_TABLE[q850]
    elif code in RESPONSE_TABLE:
        status, cause = RESPONSE_TABLE[code]
    elif code >= 500:
        status, cause = "failed", LINE_FAILED
    else:
        status, cause = "failed", OTHER  # 3xx (no redirects followed) and other 4xx
    return Verdict(status, cause, BY_CALLEE)


def verdict_for_timeout() -> Verdict:
    """Timer B: the trunk never answered the INVITE (synthetic 408, RFC 3261 §17.1.1.2)."""
    return Verdict("failed", REQUEST_TIMEOUT, BY_CALLER)


def verdict_for_transport_error() -> Verdict:
    """The INVITE could not be sent (RFC 3261 §8.1.3.1 treats it as a 503)."""
    return Verdict("failed", LINE_FAILED, BY_CALLER)


def verdict_for_local_end(end: LocalEnd, answered: bool) -> Verdict:
    """Our own decision to end the call."""
    if end is LocalEnd.RING_TIMEOUT:
        return Verdict("no_answer", NO_ANSWER, BY_CALLER)
    if end is LocalEnd.NO_CODEC:
        return Verdict("failed", OTHER, BY_CALLER)
    if end is LocalEnd.STOPPED and not answered:
        return Verdict("failed", CANCELLED, BY_CALLER)
    if end is LocalEnd.NO_RTP:
        return Verdict("completed", TIMER_EXPIRED, BY_CALLER)
    if end is LocalEnd.MACHINE:
        return Verdict("machine", NORMAL, BY_CALLER)
    return Verdict("completed", NORMAL, BY_CALLER)


def verdict_for_far_end_bye() -> Verdict:
    return Verdict("completed", NORMAL, BY_CALLEE)


def is_trunk_failure(code: int, synthetic: bool, ringing: bool, status: Status) -> bool:
    """Whether the dialer may retry the call on another trunk: the trunk itself failed
    (5xx, no response, transport error) before the far end ever rang."""
    return status == "failed" and not ringing and (synthetic or code >= 500)
