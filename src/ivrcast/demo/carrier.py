"""The demo carrier: an in-process SIP UAS on loopback that answers by the number.

With no trunk configured, the dialer routes every nation here so that a new user sees
whole calls (signalling, RTP both ways, key presses, records) without a carrier. What
happens to a call depends on the last digit of the dialed number (`MAGIC`, documented
in `docs/demo-carrier.md`).

Each call is a UAS state machine (RFC 3261 §17.2.1 INVITE server transaction and §13.3
dialog): one `_set_state` checks the allowed transitions. Timers run on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ivrcast.demo.media import DemoMedia, MediaTicker
from ivrcast.sip.errors import SdpError, SipParseError, SipTransportError
from ivrcast.sip.headers import NameAddr
from ivrcast.sip.message import Request, Response, make_response, response_address
from ivrcast.sip.sdp import SessionDescription
from ivrcast.sip.transport import SipTransport

logger = logging.getLogger(__name__)

Address = tuple[str, int]

T1 = 0.5  # RFC 3261 §17.1.1.1
T2 = 4.0
TIMER_H = 64 * T1  # §17.2.1: wait for the ACK of a final response
LINGER = 64 * T1  # keep an ended call to absorb retransmissions (§17.2.1 Timer I/J)


class Behaviour(enum.Enum):
    ANSWER = "answer and listen until the caller hangs up"
    PRESS_1 = "answer, press 1 (RFC 4733) after a second, listen until the caller hangs up"
    BUSY = "486 Busy Here"
    NO_ANSWER = "ring (180) and never answer"
    NOT_FOUND = "404 Not Found"
    REJECT = "603 Decline"
    HANG_UP = "answer and hang up (BYE) after two seconds"


MAGIC: dict[str, Behaviour] = {
    "0": Behaviour.ANSWER,
    "1": Behaviour.ANSWER,
    "2": Behaviour.ANSWER,
    "3": Behaviour.ANSWER,
    "4": Behaviour.PRESS_1,
    "5": Behaviour.BUSY,
    "6": Behaviour.NO_ANSWER,
    "7": Behaviour.NOT_FOUND,
    "8": Behaviour.REJECT,
    "9": Behaviour.HANG_UP,
}
FINAL_FAILURES = {
    Behaviour.BUSY: (486, "Busy Here"),
    Behaviour.NOT_FOUND: (404, "Not Found"),
    Behaviour.REJECT: (603, "Decline"),
}


def behaviour_for(number: str) -> Behaviour:
    digits = [c for c in number if c.isdigit()]
    return MAGIC[digits[-1]] if digits else Behaviour.ANSWER


class UasState(enum.Enum):
    PROCEEDING = "proceeding"  # 180 sent, not answered
    ACCEPTED = "accepted"  # 2xx sent, waiting for the ACK (RFC 6026 §8.7)
    CONFIRMED = "confirmed"  # ACK received: the dialog is up, media flows
    COMPLETED = "completed"  # a failure response sent, waiting for its ACK
    ENDING = "ending"  # our BYE sent, waiting for its 200
    TERMINATED = "terminated"


ALLOWED: dict[UasState, set[UasState]] = {
    UasState.PROCEEDING: {UasState.ACCEPTED, UasState.COMPLETED, UasState.TERMINATED},
    UasState.ACCEPTED: {UasState.CONFIRMED, UasState.TERMINATED, UasState.ENDING},
    UasState.CONFIRMED: {UasState.ENDING, UasState.TERMINATED},
    UasState.COMPLETED: {UasState.TERMINATED},
    UasState.ENDING: {UasState.TERMINATED},
    UasState.TERMINATED: set(),
}


@dataclass
class _UasCall:
    invite: Request
    source: Address
    behaviour: Behaviour
    tag: str = field(default_factory=lambda: secrets.token_hex(6))
    state: UasState = UasState.PROCEEDING
    last_response: Response | None = None
    media: DemoMedia | None = None
    timer: asyncio.TimerHandle | None = None
    retransmit_interval: float = T1
    bye: Request | None = None

    def set_state(self, new: UasState) -> None:
        if new not in ALLOWED[self.state]:
            raise RuntimeError(f"demo call {self.state.value} -> {new.value} not allowed")
        logger.debug(
            "demo call %s: %s -> %s",
            self.invite.call_id,
            self.state.value,
            new.value,
            extra={"event": "demo.state", "sip_call_id": self.invite.call_id},
        )
        self.state = new


class DemoCarrier:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ring_seconds: float = 1.0,
        key_after: float = 1.0,
        hangup_after: float = 2.0,
        max_ring: float = 300.0,
    ) -> None:
        self._host = host
        self._port = port
        self.ring_seconds = ring_seconds
        self.key_after = key_after
        self.hangup_after = hangup_after
        self.max_ring = max_ring
        self._transport: SipTransport | None = None
        self._calls: dict[str, _UasCall] = {}
        self._ticker = MediaTicker()
        self.invites_received = 0  # distinct INVITEs (retransmissions not counted)

    async def start(self) -> None:
        self._transport = await SipTransport.open(self._host, self._port, self._on_message)
        self._ticker.start()
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
        return sum(1 for c in self._calls.values() if c.state is not UasState.TERMINATED)

    async def stop(self) -> None:
        for call in list(self._calls.values()):
            self._terminate(call)
            self._cancel_timer(call)
        self._calls.clear()
        await self._ticker.stop()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # -- incoming ---------------------------------------------------------------------

    def _on_message(self, message: Request | Response, source: Address) -> None:
        try:
            if isinstance(message, Response):
                self._on_response(message)
            else:
                self._on_request(message, source)
        except (SipParseError, SdpError, SipTransportError, OSError) as exc:
            logger.warning(
                "demo carrier dropped %s: %s",
                message.call_id,
                exc,
                extra={"event": "demo.dropped", "sip_call_id": message.call_id},
            )

    def _on_request(self, request: Request, source: Address) -> None:
        call = self._calls.get(request.call_id)
        method = request.method
        if method == "INVITE":
            if call is None:
                self._new_call(request, source)
            elif call.invite.top_via.branch == request.top_via.branch and call.last_response:
                # §17.2.1: a retransmitted INVITE gets the last response again.
                self._send(call, call.last_response)
            else:
                # A re-INVITE: we keep our media as it is (no SDP change supported).
                self._reply(request, source, 488, "Not Acceptable Here")
        elif method == "ACK":
            if call is not None:
                self._on_ack(call)
        elif method == "CANCEL":
            self._on_cancel(call, request, source)
        elif method == "BYE":
            if call is None or call.state is UasState.TERMINATED:
                self._reply(request, source, 481, "Call/Transaction Does Not Exist")
                return
            self._reply(request, source, 200, "OK")
            self._terminate(call)
        elif method == "OPTIONS":
            self._reply(request, source, 200, "OK")
        else:
            self._reply(request, source, 501, "Not Implemented")

    def _new_call(self, invite: Request, source: Address) -> None:
        self.invites_received += 1
        user = invite.request_uri.user or ""
        call = _UasCall(invite=invite, source=source, behaviour=behaviour_for(user))
        self._calls[invite.call_id] = call
        self._respond(call, 100, "Trying", with_tag=False)
        failure = FINAL_FAILURES.get(call.behaviour)
        if failure is not None:
            self._fail(call, *failure)
            return
        self._respond(call, 180, "Ringing")
        if call.behaviour is Behaviour.NO_ANSWER:
            self._arm(call, self.max_ring, lambda: self._fail(call, 480, "Temporarily Unavailable"))
        else:
            self._arm(call, self.ring_seconds, lambda: self._answer(call))

    def _answer(self, call: _UasCall) -> None:
        """PROCEEDING -> ACCEPTED: 200 OK with our SDP answer (RFC 3264 §6)."""
        offer = SessionDescription.parse(call.invite.body)
        audio = offer.audio()
        if audio is None:
            self._fail(call, 488, "Not Acceptable Here")
            return
        codec = next(((pt, audio.encoding_of(pt)) for pt in audio.formats if pt in (0, 8)), None)
        if codec is None:
            self._fail(call, 488, "Not Acceptable Here")
            return
        payload_type, rtpmap = codec
        assert rtpmap is not None
        dtmf = next(
            (
                pt
                for pt in audio.formats
                if (m := audio.encoding_of(pt)) is not None and m.encoding == "TELEPHONE-EVENT"
            ),
            None,
        )
        media = DemoMedia(self._host)
        remote_host = audio.connection or offer.connection or call.source[0]
        media.start((remote_host, audio.port), rtpmap.encoding, payload_type, dtmf)
        call.media = media
        formats = " ".join(str(pt) for pt in (payload_type, dtmf) if pt is not None)
        lines = [
            "v=0",
            f"o=demo {secrets.randbits(31)} 1 IN IP4 {self._host}",
            "s=ivrcast demo carrier",
            f"c=IN IP4 {self._host}",
            "t=0 0",
            f"m=audio {media.local_port} RTP/AVP {formats}",
            f"a=rtpmap:{payload_type} {rtpmap.encoding}/8000",
        ]
        if dtmf is not None:
            lines += [f"a=rtpmap:{dtmf} telephone-event/8000", f"a=fmtp:{dtmf} 0-16"]
        lines += ["a=ptime:20", "a=sendrecv"]
        body = ("\r\n".join(lines) + "\r\n").encode()
        call.set_state(UasState.ACCEPTED)
        self._respond(call, 200, "OK", body=body)
        call.retransmit_interval = T1
        self._arm(call, T1, lambda: self._retransmit_2xx(call, T1))

    def _retransmit_2xx(self, call: _UasCall, elapsed: float) -> None:
        """RFC 3261 §13.3.1.4: resend the 2xx, T1 doubling to T2, until the ACK or 64×T1."""
        if call.state is not UasState.ACCEPTED or call.last_response is None:
            return
        if elapsed >= 64 * T1:
            self._terminate(call)
            return
        self._send(call, call.last_response)
        call.retransmit_interval = min(2 * call.retransmit_interval, T2)
        self._arm(
            call,
            call.retransmit_interval,
            lambda: self._retransmit_2xx(call, elapsed + call.retransmit_interval),
        )

    def _on_ack(self, call: _UasCall) -> None:
        if call.state is UasState.COMPLETED:
            self._terminate(call)
        elif call.state is UasState.ACCEPTED:
            call.set_state(UasState.CONFIRMED)
            self._cancel_timer(call)
            assert call.media is not None
            self._ticker.media.add(call.media)
            if call.behaviour is Behaviour.PRESS_1:
                self._arm(call, self.key_after, lambda: self._press(call, "1"))
            elif call.behaviour is Behaviour.HANG_UP:
                self._arm(call, self.hangup_after, lambda: self._send_bye(call))

    def _press(self, call: _UasCall, key: str) -> None:
        if call.state is UasState.CONFIRMED and call.media is not None:
            call.media.press(key)

    def _on_cancel(self, call: _UasCall | None, cancel: Request, source: Address) -> None:
        """RFC 3261 §9.2: 200 to the CANCEL; an unanswered INVITE then gets 487."""
        if call is None:
            self._reply(cancel, source, 481, "Call/Transaction Does Not Exist")
            return
        self._reply(cancel, source, 200, "OK")
        if call.state is UasState.PROCEEDING:
            self._fail(call, 487, "Request Terminated")

    def _fail(self, call: _UasCall, status: int, reason: str) -> None:
        """PROCEEDING -> COMPLETED: a final failure response, kept until its ACK."""
        call.set_state(UasState.COMPLETED)
        self._respond(call, status, reason)
        self._arm(call, TIMER_H, lambda: self._terminate(call))

    # -- our BYE ----------------------------------------------------------------------

    def _send_bye(self, call: _UasCall) -> None:
        """CONFIRMED -> ENDING: the callee hangs up (RFC 3261 §15.1.1)."""
        if call.state is not UasState.CONFIRMED:
            return
        invite = call.invite
        contact = invite.header("Contact")
        target = NameAddr.parse(contact).uri if contact else invite.request_uri
        local = self.address
        to = invite.to.with_tag(call.tag)
        call.bye = Request(
            method="BYE",
            uri=str(target),
            headers=(
                ("Via", f"SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)}"),
                ("Max-Forwards", "70"),
                ("From", str(to)),
                ("To", invite.header("From") or ""),
                ("Call-ID", invite.call_id),
                ("CSeq", "1 BYE"),
                ("User-Agent", "ivrcast-demo-carrier"),
            ),
        )
        call.set_state(UasState.ENDING)
        if call.media is not None:
            self._ticker.media.discard(call.media)
        self._send_to(call.bye, call.source)
        self._arm(call, T1, lambda: self._retransmit_bye(call, T1, T1))

    def _retransmit_bye(self, call: _UasCall, interval: float, elapsed: float) -> None:
        """Timer E (RFC 3261 §17.1.2.2), giving up at Timer F (64×T1)."""
        if call.state is not UasState.ENDING or call.bye is None:
            return
        if elapsed >= 64 * T1:
            self._terminate(call)
            return
        self._send_to(call.bye, call.source)
        interval = min(2 * interval, T2)
        self._arm(call, interval, lambda: self._retransmit_bye(call, interval, elapsed + interval))

    def _on_response(self, response: Response) -> None:
        call = self._calls.get(response.call_id)
        if call is None or call.state is not UasState.ENDING:
            return
        if response.cseq.method == "BYE" and response.status >= 200:
            self._terminate(call)

    # -- helpers ----------------------------------------------------------------------

    def _terminate(self, call: _UasCall) -> None:
        if call.state is not UasState.TERMINATED:
            call.set_state(UasState.TERMINATED)
        self._cancel_timer(call)
        if call.media is not None:
            self._ticker.media.discard(call.media)
            call.media.close()
        call_id = call.invite.call_id
        # Keep the ended call a while so retransmissions are answered, not seen as new.
        call.timer = asyncio.get_running_loop().call_later(
            LINGER, lambda: self._calls.pop(call_id, None)
        )

    def _arm(self, call: _UasCall, delay: float, action: Callable[[], None]) -> None:
        self._cancel_timer(call)
        call.timer = asyncio.get_running_loop().call_later(delay, self._fire, call, action)

    def _fire(self, call: _UasCall, action: Callable[[], None]) -> None:
        call.timer = None
        try:
            action()
        except (SipParseError, SdpError, SipTransportError, OSError) as exc:
            logger.warning(
                "demo call %s failed: %s",
                call.invite.call_id,
                exc,
                extra={"event": "demo.call_failed", "sip_call_id": call.invite.call_id},
            )
            self._terminate(call)

    @staticmethod
    def _cancel_timer(call: _UasCall) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None

    def _respond(
        self, call: _UasCall, status: int, reason: str, *, body: bytes = b"", with_tag: bool = True
    ) -> None:
        extra: list[tuple[str, str]] = []
        if status < 300 and status != 100:
            local = self.address
            extra.append(("Contact", f"<sip:demo@{local[0]}:{local[1]}>"))
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = make_response(
            call.invite, status, reason, source=call.source, extra=tuple(extra), body=body
        )
        if with_tag:
            to = str(call.invite.to.with_tag(call.tag))
            response = replace(
                response, headers=tuple((k, to if k == "To" else v) for k, v in response.headers)
            )
        if status >= 200:
            call.last_response = response
        self._send(call, response)

    def _send(self, call: _UasCall, response: Response) -> None:
        self._send_to(response, response_address(call.invite, call.source))

    def _reply(self, request: Request, source: Address, status: int, reason: str) -> None:
        response = make_response(request, status, reason, source=source)
        self._send_to(response, response_address(request, source))

    def _send_to(self, message: Request | Response, address: Address) -> None:
        if self._transport is None:
            return
        with contextlib.suppress(SipTransportError, OSError):
            self._transport.send(message, address)
