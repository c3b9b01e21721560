"""Errors of the RTP layer.

RTP is its own family under the root because `ivrcast.rtp` must not know about SIP
signalling (an import-linter contract), so it cannot subclass `SipError`.

    IvrcastError
    └── RtpError               media could not be sent or understood
        └── RtpParseError      a datagram is not a valid RTP or RFC 4733 packet
"""

from __future__ import annotations

from ivrcast.errors import IvrcastError


class RtpError(IvrcastError):
    """RTP media failed."""


class RtpParseError(RtpError, ValueError):
    """The datagram is not a valid RTP packet."""
