"""One call to the demo carrier: a UAS state machine with no I/O, on the engine's stack.

`DemoCall` answers one INVITE the way the dialed number's last digit says (`Behaviour`).
Everything protocol is shared with the engine: the INVITE and in-dialog requests go
through `sip.in_dialog.DialogServer` (server transactions, Timer G/H/I/J, the 2xx
retransmitted until its ACK, CANCEL, 491), the SDP answer is `sip.sdp.build_answer`, the
BYE is a `sip.transaction.ClientTransaction` in a `sip.dialog.Dialog`. It returns the
engine's action types (`Send`, `StartMedia`, `UpdateMedia`, `StopMedia`) plus `PressKey`;
`carrier.py` carries them out.

    RINGING -> ACCEPTED -> CONFIRMED -> ENDING -> ENDED    (our BYE and its answer)
       |           |           +---------------> ENDED    (their BYE)
       +-> REJECTED (486/404/603/480/487/488) -> ENDED    (the ACK, or Timer H)
"""

from __future__ import annotations

import enum
import logging
import random
import secrets
from dataclasses import dataclass

from ivrcast.clock import Clock
from ivrcast.sip.actions import Send, StartMedia, StopMedia, UpdateMedia
from ivrcast.sip.dialog import Dialog
from ivrcast.sip.errors import SdpError
from ivrcast.sip.in_dialog import (
    AckReceived,
    ByeReceived,
    CancelReceived,
    DialogServer,
    InviteReceived,
)
from ivrcast.sip.message import Request, Response
from ivrcast.sip.offer_answer import LocalDescription
from ivrcast.sip.sdp import MediaChoice, SessionDescription, negotiate
from ivrcast.sip.transaction import ClientTransaction, Timers, new_branch

logger = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"
USER_AGENT = "ivrcast-demo-carrier"


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


@dataclass(frozen=True)
class Pacing:
    """How long the demo takes over each step, in seconds."""

    ring: float = 1.0  # 180 to 200
    key_after: float = 1.0  # answer (ACK) to the key press of `PRESS_1`
    hangup_after: float = 2.0  # answer (ACK) to the BYE of `HANG_UP`
    max_ring: float = 300.0  # `NO_ANSWER` gives up with 480 after this


@dataclass(frozen=True)
class Local:
    """Where the demo carrier is: its SIP address and the call's RTP port."""

    host: str
    sip_port: int
    rtp_port: int


@dataclass(frozen=True)
class PressKey:
    key: str


DemoAction = Send | StartMedia | UpdateMedia | StopMedia | PressKey


class DemoState(enum.Enum):
    RINGING = "ringing"  # 180 sent, not answered
    ACCEPTED = "accepted"  # 2xx sent, waiting for its ACK
    CONFIRMED = "confirmed"  # ACK received: the dialog is up, media flows
    REJECTED = "rejected"  # a failure response sent
    ENDING = "ending"  # our BYE sent, waiting for its answer
    ENDED = "ended"


ALLOWED: dict[DemoState, frozenset[DemoState]] = {
    DemoState.RINGING: frozenset({DemoState.ACCEPTED, DemoState.REJECTED}),
    DemoState.ACCEPTED: frozenset({DemoState.CONFIRMED, DemoState.ENDED}),
    DemoState.CONFIRMED: frozenset({DemoState.ENDING, DemoState.ENDED}),
    DemoState.REJECTED: frozenset({DemoState.ENDED}),
    DemoState.ENDING: frozenset({DemoState.ENDED}),
    DemoState.ENDED: frozenset(),
}


class DemoTimer(enum.Enum):
    ANSWER = "answer"  # Pacing.ring
    GIVE_UP = "give up ringing"  # Pacing.max_ring
    PRESS = "press a key"  # Pacing.key_after
    HANG_UP = "hang up"  # Pacing.hangup_after


class DemoCall:
    def __init__(
        self,
        invite: Request,
        source: tuple[str, int],
        *,
        local: Local,
        pacing: Pacing,
        clock: Clock,
        timers: Timers,
    ) -> None:
        self.invite = invite
        self._source = source
        self._local = local
        self._pacing = pacing
        self._clock = clock
        self._timers_cfg = timers
        self.behaviour = behaviour_for(invite.request_uri.user or "")
        self._tag = secrets.token_hex(6)
        self._contact = f"<sip:demo@{local.host}:{local.sip_port}>"
        self._sdp = LocalDescription(
            local.host, local.rtp_port, session_id=random.getrandbits(31), username="demo"
        )
        self._server = DialogServer(
            clock=clock, timers=timers, allow=ALLOW, local_tag=self._tag, label=invite.call_id
        )
        self._dialog: Dialog | None = None
        self._media: MediaChoice | None = None
        self._bye: ClientTransaction | None = None
        self._timers: dict[DemoTimer, float] = {}
        self.state = DemoState.RINGING

    # -- state and timers --------------------------------------------------------

    def _set_state(self, state: DemoState) -> None:
        if state not in ALLOWED[self.state]:
            raise RuntimeError(f"demo call {self.state.value} -> {state.value} not allowed")
        logger.debug(
            "demo call %s: %s -> %s",
            self.invite.call_id,
            self.state.value,
            state.value,
            extra={"event": "demo.state", "sip_call_id": self.invite.call_id},
        )
        self.state = state

    def _timer_start(self, timer: DemoTimer, delay: float) -> None:
        self._timers[timer] = self._clock.monotonic() + delay

    def deadline(self) -> float | None:
        times = list(self._timers.values())
        if (at := self._server.deadline()) is not None:
            times.append(at)
        if self._bye is not None and (at := self._bye.deadline()) is not None:
            times.append(at)
        return min(times) if times else None

    @property
    def finished(self) -> bool:
        """Ended, or rejected, with nothing left to retransmit or absorb."""
        ended = self.state in (DemoState.ENDED, DemoState.REJECTED)
        return ended and self.deadline() is None

    @property
    def active(self) -> bool:
        return self.state not in (DemoState.ENDED, DemoState.REJECTED)

    def on_timer(self) -> list[DemoAction]:
        now = self._clock.monotonic()
        actions: list[DemoAction] = list(self._server.on_timer())
        if self._bye is not None and (at := self._bye.deadline()) is not None and now >= at:
            result = self._bye.on_timer()
            actions += [Send(r, self._bye.destination) for r in result.send]
            if result.deliver is not None and result.deliver.status >= 200:
                actions += self._end()  # Timer F: no answer to our BYE
        for timer, at in sorted(self._timers.items(), key=lambda item: item[1]):
            if now >= at and timer in self._timers:
                del self._timers[timer]
                actions += self._on_timer_expired(timer)
        if self.state is DemoState.ACCEPTED and not self._server.awaiting_ack:
            actions += self._end()  # §13.3.1.4: the 2xx was never ACKed
        return actions

    def _on_timer_expired(self, timer: DemoTimer) -> list[DemoAction]:
        if timer is DemoTimer.ANSWER:
            return self._answer()
        if timer is DemoTimer.GIVE_UP:
            return self._reject(480, "Temporarily Unavailable")
        if timer is DemoTimer.PRESS and self.state is DemoState.CONFIRMED:
            # Only to a caller that offered telephone-event (RFC 4733 §7.1.1).
            media = self._media
            return [PressKey("1")] if media and media.dtmf_payload_type is not None else []
        if timer is DemoTimer.HANG_UP and self.state is DemoState.CONFIRMED:
            return self._send_bye()
        return []

    # -- the INVITE --------------------------------------------------------------

    def start(self) -> list[DemoAction]:
        self._server.receive(self.invite, self._source)
        actions: list[DemoAction] = list(self._server.respond(self.invite, 100, "Trying"))
        failure = FINAL_FAILURES.get(self.behaviour)
        if failure is not None:
            return actions + self._reject(*failure)
        actions += self._server.respond(self.invite, 180, "Ringing")
        if self.behaviour is Behaviour.NO_ANSWER:
            self._timer_start(DemoTimer.GIVE_UP, self._pacing.max_ring)
        else:
            self._timer_start(DemoTimer.ANSWER, self._pacing.ring)
        return actions

    def _reject(self, status: int, reason: str) -> list[DemoAction]:
        """RINGING -> REJECTED: the INVITE's transaction resends the failure until its
        ACK (Timer G/H) and absorbs what follows (Timer I)."""
        self._set_state(DemoState.REJECTED)
        self._timers.clear()
        return list(self._server.respond(self.invite, status, reason))

    def _answer(self) -> list[DemoAction]:
        """RINGING -> ACCEPTED: a 2xx with our answer to the offer (RFC 3264 §6)."""
        try:
            offer = SessionDescription.parse(self.invite.body)
            choice = negotiate(offer)
        except SdpError:
            return self._reject(488, "Not Acceptable Here")
        self._media = choice
        self._dialog = Dialog.from_request(self.invite, self._tag)
        self._set_state(DemoState.ACCEPTED)
        body = self._sdp.answer(offer, choice)
        return list(self._server.accept_invite(self.invite, extra=self._sdp_headers(), body=body))

    def _sdp_headers(self) -> tuple[tuple[str, str], ...]:
        return (("Contact", self._contact), ("Content-Type", "application/sdp"))

    # -- requests and responses --------------------------------------------------

    def on_request(self, request: Request, source: tuple[str, int]) -> list[DemoAction]:
        sends, incoming = self._server.on_request(request, source, self._dialog)
        actions: list[DemoAction] = list(sends)
        if isinstance(incoming, AckReceived) and self.state is DemoState.ACCEPTED:
            actions += self._confirm()
        elif isinstance(incoming, CancelReceived) and self.state is DemoState.RINGING:
            actions += self._reject(487, "Request Terminated")  # §9.2
        elif isinstance(incoming, ByeReceived) and self.state is not DemoState.ENDED:
            actions += self._end()
        elif isinstance(incoming, InviteReceived):
            actions += self._on_reinvite(incoming.request)
        return actions

    def _confirm(self) -> list[DemoAction]:
        """ACCEPTED -> CONFIRMED: media both ways, then what the number asks for."""
        assert self._media is not None
        self._set_state(DemoState.CONFIRMED)
        if self.behaviour is Behaviour.PRESS_1:
            self._timer_start(DemoTimer.PRESS, self._pacing.key_after)
        elif self.behaviour is Behaviour.HANG_UP:
            self._timer_start(DemoTimer.HANG_UP, self._pacing.hangup_after)
        return [StartMedia(self._media)]

    def _on_reinvite(self, request: Request) -> list[DemoAction]:
        """A re-INVITE is answered like the engine answers one (RFC 3264 §6.1)."""
        if self.state is not DemoState.CONFIRMED or self._media is None:
            return list(self._server.respond(request, 481, "Call/Transaction Does Not Exist"))
        try:
            offer = SessionDescription.parse(request.body)
            choice = negotiate(offer, (self._media.codec,))
        except SdpError:
            return list(self._server.respond(request, 488, "Not Acceptable Here"))
        actions: list[DemoAction] = []
        if choice != self._media:
            self._media = choice
            actions.append(UpdateMedia(choice))
        body = self._sdp.answer(offer, choice)
        return actions + self._server.accept_invite(request, extra=self._sdp_headers(), body=body)

    def on_response(self, response: Response) -> list[DemoAction]:
        bye = self._bye
        if bye is None or response.top_via.branch != bye.branch:
            return []
        result = bye.on_response(response)
        actions: list[DemoAction] = [Send(r, bye.destination) for r in result.send]
        if result.deliver is not None and result.deliver.status >= 200:
            actions += self._end()
        return actions

    # -- ending ------------------------------------------------------------------

    def _send_bye(self) -> list[DemoAction]:
        """CONFIRMED -> ENDING: the callee hangs up (RFC 3261 §15.1.1)."""
        assert self._dialog is not None
        local = self._local
        via = f"SIP/2.0/UDP {local.host}:{local.sip_port};branch={new_branch()};rport"
        bye = self._dialog.request(
            "BYE", via=via, contact=self._contact, extra=(("User-Agent", USER_AGENT),)
        )
        self._bye = ClientTransaction(bye, self._timers_cfg, self._clock, self._dialog.next_hop())
        self._set_state(DemoState.ENDING)
        sent = self._bye.start()
        return [StopMedia(), *(Send(r, self._bye.destination) for r in sent.send)]

    def _end(self) -> list[DemoAction]:
        if self.state is DemoState.ENDED:
            return []
        self._set_state(DemoState.ENDED)
        self._timers.clear()
        return [StopMedia()]

    def stop(self) -> list[DemoAction]:
        """The carrier is closing: forget the call without a word (it is a test peer)."""
        self._timers.clear()
        return [StopMedia()]
