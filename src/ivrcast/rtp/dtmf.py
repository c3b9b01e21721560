"""RFC 4733 telephone-events: the payload format and a receiver that reports each
key press once.

A sender repeats an event's packets while the key is held (same RTP timestamp, growing
duration) and sends the end packet three times (RFC 4733 §2.5.1.4), so the receiver
keys events by RTP timestamp: a new timestamp is a new event, whatever its end bit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ivrcast.rtp.errors import RtpParseError

EVENT = struct.Struct("!BBH")  # RFC 4733 §2.3: event, E|R|volume, duration
# RFC 4733 §3.2: events 0-15 are the DTMF digits; 16 (flash) is not a key.
DTMF_KEYS = "0123456789*#ABCD"


@dataclass(frozen=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int  # dBm0 below 0, 0..63
    duration: int  # in RTP timestamp units

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        if len(data) < EVENT.size:
            raise RtpParseError(f"telephone-event payload too short: {len(data)} bytes")
        event, flags, duration = EVENT.unpack_from(data)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def __bytes__(self) -> bytes:
        flags = (0x80 if self.end else 0) | (self.volume & 0x3F)
        return EVENT.pack(self.event, flags, self.duration)

    @property
    def key(self) -> str | None:
        return DTMF_KEYS[self.event] if self.event < len(DTMF_KEYS) else None


class DtmfReceiver:
    """Turns a stream of telephone-event packets into key presses, each reported once."""

    def __init__(self) -> None:
        self._last_timestamp: int | None = None

    def on_packet(self, timestamp: int, payload: bytes) -> str | None:
        """The key of a new event, or None for a repeat, an end retransmission or a
        non-key event. Raises `RtpParseError` for a payload too short to be an event."""
        event = TelephoneEvent.parse(payload)
        if timestamp == self._last_timestamp:
            return None
        self._last_timestamp = timestamp
        return event.key
