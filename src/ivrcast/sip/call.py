"""One outgoing call as a state machine with no I/O (RFC 3261 §13 UAC, §9 CANCEL,
§15 BYE, §12 dialogs).

`Call` takes events — responses, requests from the far end, timers, media events — and
returns actions (`actions.py`: `Send`, `StartMedia`, `UpdateMedia`, `StopMedia`, `Emit`,
`Finish`) that `engine.py` carries out. The far end's in-dialog requests are answered by
`in_dialog.DialogServer`; `Call` acts on what it hands up (BYE, re-INVITE, ACK, keys).
Times come from the injected `Clock`; `deadline()` says when `on_timer()` next needs
calling.

    IDLE -> CALLING -> EARLY -> ANSWERED -> ENDED
               |         |         ^  (BYE either way, conn_time, audio done, no RTP)
               |         +-> CANCELLING -> ENDED (487)   (a 2xx racing the CANCEL:
               +-------------------+------> ENDED         ACK, BYE, ENDED)

The outcome is decided once (`Finish`); the call then lingers in ENDED only while
transactions absorb retransmissions (2xx retransmissions are ACKed again, a repeated
BYE is answered again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from ivrcast.clock import Clock
from ivrcast.sip.actions import (
    Action,
    Address,
    Emit,
    Finish,
    Send,
    StartMedia,
    StopMedia,
    UpdateMedia,
)
from ivrcast.sip.dialog import Dialog
from ivrcast.sip.digest import Challenge, authorization, choose, new_cnonce
from ivrcast.sip.errors import DigestError, SdpError, SipParseError
from ivrcast.sip.headers import q850_cause
from ivrcast.sip.in_dialog import (
    AckReceived,
    ByeReceived,
    DialogServer,
    InviteReceived,
    KeyReceived,
)
from ivrcast.sip.message import Request, Response
from ivrcast.sip.offer_answer import LocalDescription
from ivrcast.sip.outcome import (
    CallEvent,
    CallOutcome,
    EventKind,
    HangupBy,
    LocalEnd,
    Verdict,
    is_trunk_failure,
    verdict_for_far_end_bye,
    verdict_for_local_end,
    verdict_for_response,
    verdict_for_timeout,
    verdict_for_transport_error,
)
from ivrcast.sip.sdp import (
    MediaChoice,
    SessionDescription,
    negotiate,
)
from ivrcast.sip.transaction import (
    ClientTransaction,
    Timers,
    TxResult,
    build_cancel,
    new_branch,
)

logger = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"
MAX_AUTH_ATTEMPTS = 2  # a second try only for a `stale=true` nonce (RFC 7616 §3.3)


@dataclass(frozen=True)
class CallConfig:
    call_uuid: str
    call_id: str
    local_tag: str
    request_uri: str
    from_uri: str
    to_uri: str
    contact: str  # our Contact value, `<sip:...>`
    via_host: str
    via_port: int
    proxy: Address  # where the INVITE and CANCEL go
    rtp_address: str
    rtp_port: int
    session_id: int
    wait_time: float
    conn_time: float
    collect_keys: bool
    key_wait: float
    username: str | None = None
    password: str | None = None
    timers: Timers = field(default_factory=Timers)
    user_agent: str = "ivrcast"


class CallTimer(Enum):
    WAIT_TIME = "wait_time"  # the task's waittime: CANCEL an unanswered call
    CONN_TIME = "conn_time"  # the task's conntime: BYE an answered one
    KEY_WAIT = "key_wait"  # after the voice, how long keys are waited for
    CANCEL_GUARD = "cancel guard"  # RFC 3261 §9.1: no final response 64*T1 after CANCEL


class CallState(Enum):
    IDLE = "idle"
    CALLING = "calling"
    EARLY = "early"
    CANCELLING = "cancelling"
    ANSWERED = "answered"
    ENDED = "ended"


ALLOWED: dict[CallState, frozenset[CallState]] = {
    CallState.IDLE: frozenset({CallState.CALLING, CallState.ENDED}),
    CallState.CALLING: frozenset({CallState.EARLY, CallState.ANSWERED, CallState.ENDED}),
    CallState.EARLY: frozenset({CallState.CANCELLING, CallState.ANSWERED, CallState.ENDED}),
    CallState.CANCELLING: frozenset({CallState.ANSWERED, CallState.ENDED}),
    CallState.ANSWERED: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class Call:
    def __init__(self, config: CallConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self._timers_cfg = config.timers
        self.state = CallState.IDLE
        self._invite: Request | None = None
        self._invite_tx: ClientTransaction | None = None
        self._transactions: list[ClientTransaction] = []
        self._dialog: Dialog | None = None
        self._ack: Request | None = None
        self._timers: dict[CallTimer, float] = {}
        self._server = DialogServer(
            clock=clock, timers=config.timers, allow=ALLOW, label=config.call_uuid
        )
        self._auth_attempts = 0
        self._auth_header: tuple[str, str] | None = None  # (header name, value) on INVITE
        self._cancel_end: LocalEnd | None = None
        self._cancel_pending: LocalEnd | None = None
        self._media: MediaChoice | None = None
        self._sdp = LocalDescription(
            config.rtp_address, config.rtp_port, session_id=config.session_id
        )
        self._audio_done = False
        self._keys: list[str] = []
        self._invited_at: datetime | None = None
        self._ringing_at: datetime | None = None
        self._answered_at: datetime | None = None
        self._final_code: int | None = None
        self.outcome: CallOutcome | None = None

    # -- state and timers --------------------------------------------------------

    def _set_state(self, state: CallState) -> None:
        if state not in ALLOWED[self.state]:
            raise RuntimeError(f"call {self.config.call_uuid}: {self.state} -> {state}")
        logger.debug(
            "call %s: %s -> %s",
            self.config.call_uuid,
            self.state.value,
            state.value,
            extra={"event": "sip.call_state", "call_uuid": self.config.call_uuid},
        )
        self.state = state

    def _timer_start(self, timer: CallTimer, delay: float) -> None:
        self._timers[timer] = self._clock.monotonic() + delay

    def _timer_cancel(self, *timers: CallTimer) -> None:
        for timer in timers:
            self._timers.pop(timer, None)

    def deadline(self) -> float | None:
        times = list(self._timers.values())
        times += [d for tx in self._transactions if (d := tx.deadline()) is not None]
        if (d := self._server.deadline()) is not None:
            times.append(d)
        return min(times) if times else None

    @property
    def finished(self) -> bool:
        """The outcome is known and nothing is left to retransmit or absorb."""
        return self.state is CallState.ENDED and self.deadline() is None

    @property
    def answered(self) -> bool:
        return self._answered_at is not None

    # -- building requests -------------------------------------------------------

    def _via(self) -> str:
        return (
            f"SIP/2.0/UDP {self.config.via_host}:{self.config.via_port};branch={new_branch()};rport"
        )

    def _new_invite(self, cseq: int, auth: tuple[str, str] | None) -> Request:
        cfg = self.config
        offer = self._sdp.offer()
        headers: list[tuple[str, str]] = [
            ("Via", self._via()),
            ("Max-Forwards", "70"),
            ("From", f"<{cfg.from_uri}>;tag={cfg.local_tag}"),
            ("To", f"<{cfg.to_uri}>"),
            ("Call-ID", cfg.call_id),
            ("CSeq", f"{cseq} INVITE"),
            ("Contact", cfg.contact),
            ("Allow", ALLOW),
            ("User-Agent", cfg.user_agent),
            ("Content-Type", "application/sdp"),
        ]
        if auth is not None:
            headers.append(auth)
        return Request(method="INVITE", uri=cfg.request_uri, headers=tuple(headers), body=offer)

    def _run_tx(self, tx: ClientTransaction, result: TxResult, to: Address) -> list[Action]:
        """Send what a transaction asks and handle what it delivers."""
        actions: list[Action] = [Send(r, to) for r in result.send]
        if result.deliver is not None:
            actions += self._on_delivered(tx, result.deliver)
        return actions

    def _start_tx(self, request: Request, to: Address) -> tuple[ClientTransaction, list[Action]]:
        tx = ClientTransaction(request, self._timers_cfg, self._clock, to)
        self._transactions.append(tx)
        return tx, self._run_tx(tx, tx.start(), to)

    # -- events ------------------------------------------------------------------

    def start(self) -> list[Action]:
        self._set_state(CallState.CALLING)
        self._invited_at = self._clock.now()
        self._invite = self._new_invite(1, None)
        self._timer_start(CallTimer.WAIT_TIME, self.config.wait_time)
        tx, actions = self._start_tx(self._invite, self.config.proxy)
        self._invite_tx = tx
        return actions

    def on_response(self, response: Response) -> list[Action]:
        branch = response.top_via.branch
        method = response.cseq.method
        for tx in self._transactions:
            if tx.branch == branch and tx.method == method and not tx.terminated:
                return self._run_tx(tx, tx.on_response(response), tx.destination)
        if method == "INVITE" and 200 <= response.status < 300 and self._ack is not None:
            # A 2xx retransmission after Timer M: still ACK it (RFC 3261 §13.2.2.4).
            return self._ack_2xx(response)
        logger.debug(
            "stray response %s %s",
            response.status,
            method,
            extra={"event": "sip.stray_response", "call_uuid": self.config.call_uuid},
        )
        return []

    def on_transport_error(self) -> list[Action]:
        """The socket refused to send (ICMP unreachable and the like)."""
        if self._invite_tx is not None and not self._invite_tx.terminated:
            tx = self._invite_tx
            return self._run_tx(tx, tx.on_transport_error(), self.config.proxy)
        return []

    def on_timer(self) -> list[Action]:
        now = self._clock.monotonic()
        actions: list[Action] = []
        for tx in list(self._transactions):
            deadline = tx.deadline()
            if deadline is not None and now >= deadline:
                actions += self._run_tx(tx, tx.on_timer(), tx.destination)
        actions += self._server.on_timer()
        for timer, at in sorted(self._timers.items(), key=lambda item: item[1]):
            if now >= at and timer in self._timers:
                del self._timers[timer]
                actions += self._on_timer_expired(timer)
        self._transactions = [tx for tx in self._transactions if not tx.terminated]
        return actions

    def _on_timer_expired(self, timer: CallTimer) -> list[Action]:
        if timer is CallTimer.WAIT_TIME:
            return self._hang_up(LocalEnd.RING_TIMEOUT)
        if timer is CallTimer.CONN_TIME:
            return self._hang_up(LocalEnd.CONN_TIME)
        if timer is CallTimer.KEY_WAIT:
            return self._hang_up(LocalEnd.AUDIO_DONE)
        if timer is CallTimer.CANCEL_GUARD:
            # RFC 3261 §9.1: no final response 64*T1 after CANCEL: give the INVITE up.
            if self._invite_tx is not None:
                self._invite_tx.abandon()
            end = self._cancel_end or LocalEnd.RING_TIMEOUT
            return self._finish(
                verdict_for_local_end(end, False),
                code=None,
                reason="no final response after CANCEL",
                hangup_by="us",
            )
        return []

    def on_audio_done(self) -> list[Action]:
        if self.state is not CallState.ANSWERED:
            return []
        self._audio_done = True
        if self.config.collect_keys and not self._keys:
            self._timer_start(CallTimer.KEY_WAIT, self.config.key_wait)
            return []
        return self._hang_up(LocalEnd.AUDIO_DONE)

    def on_key(self, key: str) -> list[Action]:
        if self.state is not CallState.ANSWERED:
            return []
        self._keys.append(key)
        actions: list[Action] = [Emit(self._event("key", key=key))]
        if self.config.collect_keys and self._audio_done:
            actions += self._hang_up(LocalEnd.KEY)
        return actions

    def on_machine(self) -> list[Action]:
        """An answering machine answered and the task says hang up on one."""
        return self._hang_up(LocalEnd.MACHINE) if self.state is CallState.ANSWERED else []

    def on_rtp_timeout(self) -> list[Action]:
        return self._hang_up(LocalEnd.NO_RTP) if self.state is CallState.ANSWERED else []

    def stop(self) -> list[Action]:
        """The engine is shutting down: end the call as politely as the state allows."""
        return self._hang_up(LocalEnd.STOPPED)

    def abort(self, reason: str) -> list[Action]:
        """Give up at once (shutdown grace over): decide the outcome without waiting."""
        for tx in self._transactions:
            tx.abandon()
        self._transactions = []
        self._timers.clear()
        verdict = verdict_for_local_end(LocalEnd.STOPPED, self.answered)
        return self._finish(verdict, code=None, reason=reason, hangup_by="us")

    # -- responses to our requests -----------------------------------------------

    def _on_delivered(self, tx: ClientTransaction, response: Response) -> list[Action]:
        if tx.method == "INVITE":
            if tx is not self._invite_tx:
                return self._ack_2xx(response) if 200 <= response.status < 300 else []
            return self._on_invite_response(response)
        if tx.method == "BYE" and response.status in (401, 407):
            return self._retry_bye_with_auth(tx, response)
        return []  # CANCEL, BYE, INFO answers need nothing more

    def _on_invite_response(self, response: Response) -> list[Action]:
        code = response.status
        if code < 200:
            return self._on_provisional(response)
        if code < 300:
            return self._on_invite_2xx(response)
        if code in (401, 407) and self.state in (CallState.CALLING, CallState.EARLY):
            retry = self._retry_invite_with_auth(response)
            if retry is not None:
                return retry
        return self._on_invite_failure(response)

    def _on_provisional(self, response: Response) -> list[Action]:
        actions: list[Action] = []
        if self.state is CallState.CALLING:
            self._set_state(CallState.EARLY)
        if response.status > 100 and self._ringing_at is None and self.state is CallState.EARLY:
            self._ringing_at = self._clock.now()
            actions.append(Emit(self._event("ringing", sip_code=response.status)))
        if self._cancel_pending is not None and self.state is CallState.EARLY:
            actions += self._send_cancel(self._cancel_pending)
        return actions

    def _on_invite_2xx(self, response: Response) -> list[Action]:
        if self._dialog is not None:
            return self._ack_2xx(response)
        try:
            self._dialog = Dialog.from_response(self._invite_request(), response)
        except SipParseError as exc:
            return self._finish(
                verdict_for_local_end(LocalEnd.NO_CODEC, False),
                code=response.status,
                reason=f"bad 2xx: {exc}",
                hangup_by=None,
            )
        actions = self._ack_2xx(response)
        self._final_code = response.status
        self._answered_at = self._clock.now()
        cancelled = self._cancel_end is not None or self._cancel_pending is not None
        self._set_state(CallState.ANSWERED)
        self._timer_cancel(CallTimer.WAIT_TIME, CallTimer.CANCEL_GUARD)
        if cancelled:
            # RFC 3261 §9.1: the 2xx won the race with our CANCEL: ACK it, then BYE.
            return actions + self._send_bye(
                verdict_for_local_end(LocalEnd.AUDIO_DONE, True), "answered after CANCEL"
            )
        try:
            choice = negotiate(SessionDescription.parse(response.body))
        except SdpError as exc:
            reason = f"{response.status} {response.reason}, but no usable audio: {exc}"
            return actions + self._send_bye(verdict_for_local_end(LocalEnd.NO_CODEC, True), reason)
        self._media = choice
        self._timer_start(CallTimer.CONN_TIME, self.config.conn_time)
        return [
            *actions,
            StartMedia(choice),
            Emit(self._event("answered", sip_code=response.status)),
        ]

    def _ack_2xx(self, response: Response) -> list[Action]:
        """RFC 3261 §13.2.2.4: each 2xx is ACKed; the ACK is its own transaction."""
        dialog = self._dialog
        if dialog is None:
            return []
        if response.to.tag != dialog.remote_tag:
            return self._end_forked_dialog(response)
        if self._ack is None:
            extra = (self._auth_header,) if self._auth_header else ()
            self._ack = dialog.request(
                "ACK",
                via=self._via(),
                contact=self.config.contact,
                extra=extra,
                cseq=self._invite_request().cseq.seq,
            )
        return [Send(self._ack, dialog.next_hop())]

    def _end_forked_dialog(self, response: Response) -> list[Action]:
        """A 2xx from a second fork (RFC 3261 §13.2.2.4): ACK it and BYE it at once."""
        try:
            fork = Dialog.from_response(self._invite_request(), response)
        except SipParseError:
            return []
        ack = fork.request(
            "ACK", via=self._via(), contact=self.config.contact, cseq=fork.local_cseq
        )
        bye = fork.request("BYE", via=self._via(), contact=self.config.contact)
        hop = fork.next_hop()
        _, actions = self._start_tx(bye, hop)
        return [Send(ack, hop), *actions]

    def _on_invite_failure(self, response: Response) -> list[Action]:
        if self.state is CallState.ENDED:
            return []
        q850 = q850_cause(response.header_values("Reason"))
        synthetic = response.received_at is None
        if self._cancel_end is not None:
            verdict = verdict_for_local_end(self._cancel_end, False)
            return self._finish(
                verdict, code=response.status, reason=response.reason, q850=q850, hangup_by="us"
            )
        if synthetic and response.status == 408:
            verdict = verdict_for_timeout()
        elif synthetic:
            verdict = verdict_for_transport_error()
        else:
            verdict = verdict_for_response(response.status, q850)
        trunk_failed = is_trunk_failure(
            response.status, synthetic, self._ringing_at is not None, verdict.status
        )
        return self._finish(
            verdict,
            code=response.status,
            reason=response.reason,
            q850=q850,
            hangup_by=None,
            trunk_failed=trunk_failed,
        )

    def _challenge(self, response: Response) -> Challenge | None:
        """The challenge of a 401/407 we can answer, if we have credentials."""
        if self.config.username is None or self.config.password is None:
            return None
        name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        try:
            return choose(response.header_values(name))
        except DigestError as exc:
            logger.warning(
                "cannot answer challenge: %s",
                exc,
                extra={"event": "sip.auth_unsupported", "call_uuid": self.config.call_uuid},
            )
            return None

    def _challenge_answer(
        self, response: Response, challenge: Challenge, method: str, uri: str
    ) -> tuple[str, str]:
        cfg = self.config
        assert cfg.username is not None
        assert cfg.password is not None
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        value = authorization(
            challenge,
            method=method,
            uri=uri,
            username=cfg.username,
            password=cfg.password,
            cnonce=new_cnonce(),
        )
        return name, value

    def _retry_invite_with_auth(self, response: Response) -> list[Action] | None:
        if self._auth_attempts >= MAX_AUTH_ATTEMPTS:
            return None
        challenge = self._challenge(response)
        if challenge is None:
            return None
        if self._auth_attempts == 1 and not challenge.stale:
            return None  # our credentials were refused
        invite = self._invite_request()
        answer = self._challenge_answer(response, challenge, "INVITE", invite.uri)
        self._auth_attempts += 1
        self._auth_header = answer
        self._invite = self._new_invite(invite.cseq.seq + 1, answer)
        tx, actions = self._start_tx(self._invite, self.config.proxy)
        self._invite_tx = tx
        return actions

    def _retry_bye_with_auth(self, tx: ClientTransaction, response: Response) -> list[Action]:
        if tx.authenticated or self._dialog is None:
            return []
        challenge = self._challenge(response)
        if challenge is None:
            return []
        answer = self._challenge_answer(response, challenge, "BYE", tx.request.uri)
        bye = self._dialog.request(
            "BYE", via=self._via(), contact=self.config.contact, extra=(answer,)
        )
        _, actions = self._start_tx(bye, tx.destination)
        return actions

    # -- ending ------------------------------------------------------------------

    def _hang_up(self, end: LocalEnd) -> list[Action]:
        state = self.state
        if state is CallState.ANSWERED:
            reason = {
                LocalEnd.AUDIO_DONE: "audio played",
                LocalEnd.KEY: "key received",
                LocalEnd.CONN_TIME: "conn_time reached",
                LocalEnd.NO_RTP: "no RTP from the far end",
                LocalEnd.STOPPED: "engine stopped",
                LocalEnd.MACHINE: "answering machine",
            }.get(end, end.value)
            return self._send_bye(verdict_for_local_end(end, True), reason)
        if state is CallState.EARLY:
            return self._send_cancel(end)
        if state is CallState.CALLING:
            if end is LocalEnd.STOPPED:
                if self._invite_tx is not None:
                    self._invite_tx.abandon()
                return self._finish(
                    verdict_for_local_end(end, False),
                    code=None,
                    reason="engine stopped",
                    hangup_by="us",
                )
            # RFC 3261 §9.1: no CANCEL before a provisional; send it when one comes,
            # or let Timer B end the call.
            self._cancel_pending = end
        return []

    def _send_cancel(self, end: LocalEnd) -> list[Action]:
        self._cancel_pending = None
        self._cancel_end = end
        self._set_state(CallState.CANCELLING)
        self._timer_cancel(CallTimer.WAIT_TIME)
        self._timer_start(CallTimer.CANCEL_GUARD, self._timers_cfg.timer_b)
        _, actions = self._start_tx(build_cancel(self._invite_request()), self.config.proxy)
        return actions

    def _send_bye(self, verdict: Verdict, reason: str) -> list[Action]:
        assert self._dialog is not None
        extra: tuple[tuple[str, str], ...] = (("User-Agent", self.config.user_agent),)
        bye = self._dialog.request("BYE", via=self._via(), contact=self.config.contact, extra=extra)
        _, actions = self._start_tx(bye, self._dialog.next_hop())
        status = self._final_code or 200
        return actions + self._finish(verdict, code=status, reason=reason, hangup_by="us")

    def _finish(
        self,
        verdict: Verdict,
        *,
        code: int | None,
        reason: str,
        q850: int | None = None,
        hangup_by: HangupBy | None,
        trunk_failed: bool = False,
    ) -> list[Action]:
        if self.state is CallState.ENDED:
            return []
        self._set_state(CallState.ENDED)
        self._timer_cancel(*CallTimer)
        ended = self._clock.now()
        self.outcome = CallOutcome(
            status=verdict.status,
            sip_code=code,
            sip_reason=reason,
            q850_cause=q850,
            invited_at=self._invited_at,
            ringing_at=self._ringing_at,
            answered_at=self._answered_at,
            ended_at=ended,
            hangup_by=hangup_by,
            hangup_cause=verdict.cause,
            hangup_direction=verdict.direction,
            keys="".join(self._keys),
            codec=self._media.codec if self._media else None,
            trunk_failed=trunk_failed,
            call_id=self.config.call_id,
        )
        logger.info(
            "call ended: %s %s %s",
            verdict.status,
            code,
            reason,
            extra={"event": "sip.call_ended", "call_uuid": self.config.call_uuid},
        )
        return [StopMedia(), Emit(self._event("hangup", sip_code=code)), Finish(self.outcome)]

    def _event(
        self, kind: EventKind, *, key: str | None = None, sip_code: int | None = None
    ) -> CallEvent:
        return CallEvent(
            kind=kind,
            at=self._clock.now(),
            call_uuid=self.config.call_uuid,
            key=key,
            sip_code=sip_code,
        )

    def _invite_request(self) -> Request:
        assert self._invite is not None, "start() first"
        return self._invite

    # -- requests from the far end -----------------------------------------------

    def on_request(self, request: Request, source: Address) -> list[Action]:
        sends, incoming = self._server.on_request(request, source, self._dialog)
        actions: list[Action] = list(sends)
        if isinstance(incoming, ByeReceived):
            if self.state is CallState.ANSWERED:
                q850 = q850_cause(incoming.request.header_values("Reason"))
                actions += self._finish(
                    verdict_for_far_end_bye(),
                    code=200,
                    reason="BYE from the far end",
                    q850=q850,
                    hangup_by="callee",
                )
        elif isinstance(incoming, InviteReceived):
            actions += self._on_reinvite(incoming.request)
        elif isinstance(incoming, AckReceived):
            actions += self._on_ack(incoming.request)
        elif isinstance(incoming, KeyReceived):
            actions += self.on_key(incoming.key)
        return actions

    def _on_reinvite(self, request: Request) -> list[Action]:
        if self.state is not CallState.ANSWERED or self._media is None:
            return list(self._server.respond(request, 481, "Call/Transaction Does Not Exist"))
        codec = self._media.codec
        actions: list[Action] = []
        if request.body:
            # RFC 3264 §6.1: answer the offer: its payload types, our codec, its
            # telephone-event if any, its direction mirrored (hold, §8.4).
            try:
                offer = SessionDescription.parse(request.body)
                choice = negotiate(offer, codecs=(codec,))
            except SdpError:
                return list(self._server.respond(request, 488, "Not Acceptable Here"))
            if choice != self._media:
                self._media = choice
                actions.append(UpdateMedia(choice))
            body = self._sdp.answer(offer, choice)
        else:
            # An offer-less re-INVITE asks us to offer (§14.2); the ACK carries the answer.
            body = self._sdp.offer((codec,))
        extra = (("Contact", self.config.contact), ("Content-Type", "application/sdp"))
        return actions + self._server.accept_invite(request, extra=extra, body=body)

    def _on_ack(self, request: Request) -> list[Action]:
        """The ACK of our 2xx to a re-INVITE; after an offer-less re-INVITE it carries
        the far end's answer."""
        if not request.body or self._media is None or self.state is not CallState.ANSWERED:
            return []
        try:
            choice = negotiate(SessionDescription.parse(request.body), (self._media.codec,))
        except SdpError:
            return []
        if choice == self._media:
            return []
        self._media = choice
        return [UpdateMedia(choice)]
