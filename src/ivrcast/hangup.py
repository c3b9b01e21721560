"""The vendor's hang-up codes (shared reference `call-record-callback.md`).

One table serves both record fields, `hangupcause` and `hangupdirection`. The engine's
outcome table (`sip.outcome`) and the call record (`callbacks.record`) both take their
codes from here, so neither needs the other; only the codes ivrcast uses are named.
"""

from __future__ import annotations

from typing import Final

NORMAL: Final = 10001
CANCELLED: Final = 10002
REJECTED: Final = 10003
LINE_FAILED: Final = 10004  # outbound line failed
USER_NO_ANSWER: Final = 10005  # the user did not answer (user action)
USER_BUSY: Final = 10006
SERVER_HUNG_UP: Final = 10007
TIMER_EXPIRED: Final = 10011
NOT_FOUND: Final = 10014
REQUEST_TIMEOUT: Final = 10015
NO_ANSWER: Final = 10016
CALL_INVALID: Final = 10017
OTHER: Final = 10020
BAD_REQUEST: Final = 10024
CALL_BARRED: Final = 10025
NUMBER_CHANGED: Final = 10027
UNKNOWN: Final = 10031

# `hangupdirection`: who ended the call.
BY_CALLER: Final = 10040  # we (the caller) ended it
BY_CALLEE: Final = 10041  # the far end ended it
