"""Sending one key press as RFC 4733 telephone-events, 20 ms apart on the media clock.

`key_press_payloads` is the payload sequence of one press (RFC 4733 §2.5.1): the key held
for 100 ms, five packets of growing duration that share the event's start timestamp
(the first with the marker bit, §2.5.1.3), then the end packet sent three times with the
final duration (§2.5.1.4). `KeyPress` stands in for an `RtpStream` on the `MediaClock`
for those eight ticks, sends one packet per tick through the stream (same SSRC and
sequence numbers), and then moves the stream's audio timestamp past the event
(§2.5.1.5) and hands the slot back with `on_done`.
"""

from __future__ import annotations

from collections.abc import Callable

from ivrcast.rtp.dtmf import DTMF_KEYS, TelephoneEvent
from ivrcast.rtp.g711 import FRAME_SAMPLES
from ivrcast.rtp.media import MediaStream

HELD_PACKETS = 5  # 100 ms at 20 ms a packet
END_REPEATS = 3  # RFC 4733 §2.5.1.4
VOLUME = 10  # dBm0 below 0


def key_press_payloads(key: str) -> tuple[tuple[bool, bytes], ...]:
    """(marker, payload) of each packet of one press of `key` (one of `DTMF_KEYS`)."""
    event = DTMF_KEYS.index(key)
    held = [
        (n == 0, bytes(TelephoneEvent(event, False, VOLUME, FRAME_SAMPLES * (n + 1))))
        for n in range(HELD_PACKETS)
    ]
    end = bytes(TelephoneEvent(event, True, VOLUME, FRAME_SAMPLES * HELD_PACKETS))
    return (*held, *[(False, end)] * END_REPEATS)


class KeyPress:
    """One press of `key` sent on `stream`, a packet per `tick()`."""

    def __init__(self, stream: MediaStream, key: str, *, on_done: Callable[[], None]) -> None:
        self.label = stream.label
        self._stream = stream
        self._packets = key_press_payloads(key)
        self._sent = 0
        self._start = stream.timestamp
        self._on_done = on_done

    def tick(self) -> None:
        marker, payload = self._packets[self._sent]
        self._stream.send_event(payload, timestamp=self._start, marker=marker)
        self._sent += 1
        if self._sent == len(self._packets):
            self._stream.skip(FRAME_SAMPLES * self._sent)
            self._on_done()

    def check_rtp_timeout(self, now: float) -> None:
        self._stream.check_rtp_timeout(now)
