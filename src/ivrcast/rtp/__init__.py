"""RTP media: the one 20 ms media clock, G.711, RFC 4733 DTMF and receive statistics.

Knows nothing of SIP: a stream is told where to send and what, and reports audio done,
keys and silence through callbacks.
"""

from __future__ import annotations

from ivrcast.rtp.clock import MediaClock
from ivrcast.rtp.dtmf import DtmfReceiver, TelephoneEvent
from ivrcast.rtp.errors import RtpError, RtpParseError
from ivrcast.rtp.packet import RtpPacket
from ivrcast.rtp.stats import ReceiveStats
from ivrcast.rtp.stream import RtpStream, open_rtp_socket
from ivrcast.rtp.voice import EncodedAudio

__all__ = [
    "DtmfReceiver",
    "EncodedAudio",
    "MediaClock",
    "ReceiveStats",
    "RtpError",
    "RtpPacket",
    "RtpParseError",
    "RtpStream",
    "TelephoneEvent",
    "open_rtp_socket",
]
