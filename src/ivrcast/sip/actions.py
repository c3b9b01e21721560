"""What the protocol cores ask their I/O shell to do.

`Call` (the UAC), `DialogServer` (the server side of a dialog) and the demo carrier's
UAS return these; `engine.py` and `demo/carrier.py` carry them out.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivrcast.sip.message import Request, Response
from ivrcast.sip.outcome import CallEvent, CallOutcome
from ivrcast.sip.sdp import MediaChoice

Address = tuple[str, int]


@dataclass(frozen=True)
class Send:
    message: Request | Response
    address: Address


@dataclass(frozen=True)
class StartMedia:
    choice: MediaChoice


@dataclass(frozen=True)
class UpdateMedia:
    """The far end moved its media or changed its direction (a re-INVITE, hold)."""

    choice: MediaChoice


@dataclass(frozen=True)
class StopMedia:
    pass


@dataclass(frozen=True)
class Emit:
    event: CallEvent


@dataclass(frozen=True)
class Finish:
    outcome: CallOutcome


Action = Send | StartMedia | UpdateMedia | StopMedia | Emit | Finish
