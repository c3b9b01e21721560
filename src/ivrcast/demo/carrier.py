"""The demo carrier: an in-process SIP UAS on loopback that answers by the number.

With no trunk configured, the dialer routes every nation here so that a new user sees
whole calls (signalling, RTP both ways, key presses, records) without a carrier. What
happens to a call depends on the last digit of the dialed number (`uas.MAGIC`, documented
in `docs/demo-carrier.md`).

This module is only the I/O: one SIP socket, one RTP socket per call read through one
`SocketReaders` set, and the demo's own `MediaClock` (a task of its own on the dialer's
loop, like the old demo ticker). Each call is a `uas.DemoCall` state machine built on the
engine's SIP stack; its actions are carried out here as `engine.py` carries out a
`Call`'s, and its media is an `RtpStream` playing `media.TONE`, with key presses sent by
`rtp.dtmf_send.KeyPress`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from ivrcast.clock import Clock, SystemClock
from ivrcast.demo.media import TONE
from ivrcast.demo.uas import DemoAction, DemoCall, Local, Pacing, PressKey
from ivrcast.rtp.clock import PTIME, MediaClock
from ivrcast.rtp.dtmf_send import KeyPress
from ivrcast.rtp.g711 import SILENCE_FRAMES
from ivrcast.rtp.readers import SocketReaders
from ivrcast.rtp.stream import RtpStream, open_rtp_socket
from ivrcast.sip.actions import Send, StartMedia, StopMedia, UpdateMedia
from ivrcast.sip.engine import follow_direction
from ivrcast.sip.errors import SdpError, SipParseError, SipTransportError
from ivrcast.sip.message import Request, Response, make_response, response_address
from ivrcast.sip.transaction import Timers
from ivrcast.sip.transport import SipTransport

logger = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass
class _Entry:
    call: DemoCall
    stream: RtpStream
    timer: asyncio.TimerHandle | None = None
    press: KeyPress | None = None


class DemoCarrier:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pacing: Pacing | None = None,
        timers: Timers | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self.pacing = pacing or Pacing()
        self._timers = timers or Timers()
        self._clock: Clock = clock or SystemClock()
        self._transport: SipTransport | None = None
        self._readers: SocketReaders | None = None
        self.media_clock = MediaClock()
        self._calls: dict[str, _Entry] = {}
        self.invites_received = 0  # distinct INVITEs (retransmissions not counted)

    async def start(self) -> None:
        self._transport = await SipTransport.open(self._host, self._port, self._on_message)
        self._readers = SocketReaders(interval=PTIME)
        self.media_clock.start()
        logger.info(
            "demo carrier listening on %s:%s",
            *self.address,
            extra={"event": "demo.started"},
        )

    @property
    def address(self) -> Address:
        if self._transport is None:
            raise RuntimeError("DemoCarrier.start() first")
        return self._transport.local_address

    @property
    def active_calls(self) -> int:
        return sum(1 for e in self._calls.values() if e.call.active)

    async def stop(self) -> None:
        for entry in list(self._calls.values()):
            self._feed(entry, entry.call.stop())
            self._drop(entry)
        await self.media_clock.stop()
        if self._readers is not None:
            self._readers.close()
            self._readers = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # -- incoming ---------------------------------------------------------------------

    def _on_message(self, message: Request | Response, source: Address) -> None:
        try:
            entry = self._calls.get(message.call_id)
            if isinstance(message, Response):
                if entry is not None:
                    self._feed(entry, entry.call.on_response(message))
            elif entry is not None:
                self._feed(entry, entry.call.on_request(message, source))
            elif message.method == "INVITE" and message.to.tag is None:
                self._new_call(message, source)
            else:
                self._answer_stray(message, source)
        except (SipParseError, SdpError, SipTransportError, OSError) as exc:
            logger.warning(
                "demo carrier dropped %s: %s",
                message.call_id,
                exc,
                extra={"event": "demo.dropped", "sip_call_id": message.call_id},
            )

    def _new_call(self, invite: Request, source: Address) -> None:
        assert self._readers is not None
        self.invites_received += 1
        loop = asyncio.get_running_loop()
        sock = open_rtp_socket(self._host)
        stream = RtpStream(sock, readers=self._readers, label=invite.call_id, monotonic=loop.time)
        local = Local(self._host, self.address[1], stream.local_address[1])
        call = DemoCall(
            invite, source, local=local, pacing=self.pacing, clock=self._clock, timers=self._timers
        )
        entry = _Entry(call, stream)
        self._calls[invite.call_id] = entry
        self._feed(entry, call.start())

    def _answer_stray(self, request: Request, source: Address) -> None:
        """Requests for no call of ours (or one long gone): 481, and no answer to ACK."""
        if request.method == "ACK" or self._transport is None:
            return
        response = make_response(request, 481, "Call/Transaction Does Not Exist", source=source)
        with contextlib.suppress(SipTransportError, OSError):
            self._transport.send(response, response_address(request, source))

    # -- carrying out actions -----------------------------------------------------------

    def _feed(self, entry: _Entry, actions: list[DemoAction]) -> None:
        for action in actions:
            self._do(entry, action)
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        if entry.call.finished:
            self._drop(entry)
            return
        deadline = entry.call.deadline()
        if deadline is not None:
            delay = max(deadline - self._clock.monotonic(), 0.0)
            entry.timer = asyncio.get_running_loop().call_later(delay, self._on_timer, entry)

    def _do(self, entry: _Entry, action: DemoAction) -> None:
        stream = entry.stream
        if isinstance(action, Send):
            if self._transport is not None:
                with contextlib.suppress(SipTransportError, OSError):
                    self._transport.send(action.message, action.address)
        elif isinstance(action, StartMedia):
            choice = action.choice
            stream.start(
                (choice.address, choice.port),
                frames=TONE[choice.codec],
                silence=SILENCE_FRAMES[choice.codec],
                payload_type=choice.payload_type,
                dtmf_payload_type=choice.dtmf_payload_type,
                no_rtp_timeout=None,
            )
            follow_direction(self.media_clock, stream, choice, None)
        elif isinstance(action, UpdateMedia):
            stream.set_remote((action.choice.address, action.choice.port))
            follow_direction(self.media_clock, stream, action.choice, None)
        elif isinstance(action, StopMedia):
            # A demo call's media never restarts: free its socket now, not at the end
            # of the transactions that absorb retransmissions.
            self._stop_press(entry)
            self.media_clock.remove(stream)
            stream.close()
        elif isinstance(action, PressKey):
            self._press(entry, action.key)

    def _press(self, entry: _Entry, key: str) -> None:
        """The key's packets take the stream's place on the clock for eight ticks; a
        caller that offered no telephone-event gets no key."""
        if entry.press is not None or entry.stream.closed:
            return
        stream = entry.stream
        press = KeyPress(stream, key, on_done=lambda: self._stop_press(entry))
        entry.press = press
        self.media_clock.remove(stream)
        self.media_clock.add(press)

    def _stop_press(self, entry: _Entry) -> None:
        press, entry.press = entry.press, None
        if press is not None:
            self.media_clock.remove(press)
            if entry.call.active:
                self.media_clock.add(entry.stream)

    def _on_timer(self, entry: _Entry) -> None:
        entry.timer = None
        try:
            self._feed(entry, entry.call.on_timer())
        except (SipParseError, SdpError, SipTransportError, OSError) as exc:
            logger.warning(
                "demo call %s failed: %s",
                entry.call.invite.call_id,
                exc,
                extra={"event": "demo.call_failed", "sip_call_id": entry.call.invite.call_id},
            )
            self._feed(entry, entry.call.stop())
            self._drop(entry)

    def _drop(self, entry: _Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        self._stop_press(entry)
        self.media_clock.remove(entry.stream)
        entry.stream.close()
        self._calls.pop(entry.call.invite.call_id, None)
