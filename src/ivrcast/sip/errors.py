"""Errors of the SIP layer (the `SipError` family of `ivrcast.errors`).

    SipError
    ├── SipParseError          a message, header, URI or SDP body is malformed (ValueError)
    │   └── SdpError           an SDP body is malformed or offers nothing we can use (488)
    ├── DigestError            a challenge cannot be answered (unknown algorithm, no qop we do)
    └── SipTransportError      the UDP socket could not be opened or used

Busy, no answer and rejections are `CallOutcome` values, never exceptions.
"""

from __future__ import annotations

from ivrcast.errors import SipError


class SipParseError(SipError, ValueError):
    """The SIP message is malformed."""

    code = 400  # the response a UAS would send for it


class SdpError(SipParseError):
    """The session description is malformed or unusable."""

    code = 488


class DigestError(SipError):
    """The authentication challenge cannot be answered."""


class SipTransportError(SipError):
    """The SIP transport failed."""
