"""The call engine: an asyncio SIP UAC (RFC 3261) with G.711 RTP and DTMF.

The dialer uses `Engine`, `CallRequest`, `Trunk`, `EncodedAudio`, `CallOutcome` and
`CallEvent`; the protocol modules (`message`, `sdp`, `digest`, `headers`, `uri`) do no
I/O and serve a UAS as well.
"""

from __future__ import annotations

from ivrcast.sip.engine import CallRequest, EncodedAudio, Engine, Trunk
from ivrcast.sip.errors import DigestError, SdpError, SipParseError, SipTransportError
from ivrcast.sip.outcome import CallEvent, CallOutcome
from ivrcast.sip.transaction import Timers

__all__ = [
    "CallEvent",
    "CallOutcome",
    "CallRequest",
    "DigestError",
    "EncodedAudio",
    "Engine",
    "SdpError",
    "SipParseError",
    "SipTransportError",
    "Timers",
    "Trunk",
]
