"""The call engine: an asyncio SIP UAC (RFC 3261) with G.711 RTP and DTMF.

The dialer uses `Engine`, `CallRequest`, `Trunk`, `CallOutcome` and `CallEvent` (the
voice it plays is an `rtp.EncodedAudio`); the protocol modules (`message`, `sdp`,
`digest`, `headers`, `uri`, `dialog`, `transaction`, `in_dialog`) do no I/O and serve the
demo carrier's UAS as well.
"""

from __future__ import annotations

from ivrcast.sip.engine import CallRequest, Engine
from ivrcast.sip.errors import DigestError, SdpError, SipParseError, SipTransportError
from ivrcast.sip.outcome import CallEvent, CallOutcome
from ivrcast.sip.transaction import Timers
from ivrcast.sip.trunk import Trunk

__all__ = [
    "CallEvent",
    "CallOutcome",
    "CallRequest",
    "DigestError",
    "Engine",
    "SdpError",
    "SipParseError",
    "SipTransportError",
    "Timers",
    "Trunk",
]
