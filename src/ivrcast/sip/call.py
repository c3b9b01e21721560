"""One outgoing call as a state machine with no I/O (RFC 3261 §13 UAC, §9 CANCEL,
§15 BYE, §12 dialogs).

`Call` takes events — responses, requests from the far end, timers, media events — and
returns actions (`Send`, `StartMedia`, `UpdateMedia`, `StopMedia`, `Emit`, `Finish`) that
`engine.py` carries out. Times come from the injected `Clock`; `deadline()` says when
`on_timer()` next needs calling.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from ivrcast.clock import Clock
from ivrcast.sip.dialog import Dialog
from ivrcast.sip.digest import authorization, choose, new_cnonce
from ivrcast.sip.errors import DigestError, SdpError, SipParseError
from ivrcast.sip.headers import q850_cause
from ivrcast.sip.message import Request, Response, make_response, response_address
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
    build_answer,
    build_offer,
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

DTMF_KEYS = "0123456789*#ABCD"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"
MAX_AUTH_ATTEMPTS = 2  # a second try only for a `stale=true` nonce (RFC 7616 §3.3)
Address = tuple[str, int]


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
    proxy: Address  # where the INVITE (and, with `force_proxy`, everything) goes
    rtp_address: str
    rtp_port: int
    session_id: int
    wait_time: float
    conn_time: float
    collect_keys: bool
    key_wait: float
    username: str | None = None
    password: str | None = None
    force_proxy: bool = False
    timers: Timers = field(default_factory=Timers)
    user_agent: str = "ivrcast"


@dataclass(frozen=True)
class Send:
    message: Request | Response
    address: Address


@dataclass(frozen=True)
class StartMedia:
    choice: MediaChoice


@dataclass(frozen=True)
class UpdateMedia:
    choice: MediaChoice


@dataclass(frozen=True)
class StopMedia:
    pass


@dataclass(frozen=True)
class Emit:
    event: CallEvent


@dataclass(frozen=True)
class Finish:
    outcome: CallOutcome


Action = Send | StartMedia | UpdateMedia | StopMedia | Emit | Finish


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
        self._timers: dict[str, float] = {}
        self._responded: dict[tuple[str, str], tuple[Response, Address]] = {}
        self._auth_attempts = 0
        self._auth_header: tuple[str, str] | None = None  # (header name, value) on INVITE
        self._cancel_end: LocalEnd | None = None
        self._cancel_pending: LocalEnd | None = None
        self._media: MediaChoice | None = None
        self._sdp_version = 1
        self._last_sdp: bytes | None = None  # our last description in this dialog
        self._reinvite_2xx: tuple[Response, Address, int] | None = None  # resp, addr, cseq
        self._reinvite_interval = config.timers.t1
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

    def _timer_start(self, name: str, delay: float) -> None:
        self._timers[name] = self._clock.monotonic() + delay

    def _timer_cancel(self, *names: str) -> None:
        for name in names:
            self._timers.pop(name, None)

    def deadline(self) -> float | None:
        times = list(self._timers.values())
        times += [d for tx in self._transactions if (d := tx.deadline()) is not None]
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

    def _route(self, default: Address) -> Address:
        return self.config.proxy if self.config.force_proxy else default

    def _new_invite(self, cseq: int, auth: tuple[str, str] | None) -> Request:
        cfg = self.config
        offer = build_offer(cfg.rtp_address, cfg.rtp_port, session_id=cfg.session_id)
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
        self._timer_start("wait", self.config.wait_time)
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
        for name, at in sorted(self._timers.items(), key=lambda item: item[1]):
            if now >= at and name in self._timers:
                del self._timers[name]
                actions += self._on_timer_expired(name)
        self._transactions = [tx for tx in self._transactions if not tx.terminated]
        return actions

    def _on_timer_expired(self, name: str) -> list[Action]:
        if name == "wait":
            return self._hang_up(LocalEnd.RING_TIMEOUT)
        if name == "conn":
            return self._hang_up(LocalEnd.CONN_TIME)
        if name == "key_wait":
            return self._hang_up(LocalEnd.AUDIO_DONE)
        if name == "cancel_guard":
            # RFC 3261 §9.1: no final response 64*T1 after CANCEL: give the INVITE up.
            if self._invite_tx is not None:
                self._invite_tx.abandon()
            end = self._cancel_end or LocalEnd.RING_TIMEOUT
            return self._finish(
                verdict_for_local_end(end, False),
                None,
                "no final response after CANCEL",
                None,
                "us",
            )
        if name == "reinvite_2xx" and self._reinvite_2xx is not None:
            response, address, _ = self._reinvite_2xx
            self._reinvite_interval = min(self._reinvite_interval * 2, self._timers_cfg.t2)
            self._timer_start("reinvite_2xx", self._reinvite_interval)
            return [Send(response, address)]
        if name == "reinvite_giveup":
            self._reinvite_2xx = None
            self._timer_cancel("reinvite_2xx")
        return []

    def on_audio_done(self) -> list[Action]:
        if self.state is not CallState.ANSWERED:
            return []
        self._audio_done = True
        if self.config.collect_keys and not self._keys:
            self._timer_start("key_wait", self.config.key_wait)
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
        return self._finish(verdict, None, reason, None, "us")

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
                response.status,
                f"bad 2xx: {exc}",
                None,
                None,
            )
        actions = self._ack_2xx(response)
        self._final_code = response.status
        self._answered_at = self._clock.now()
        cancelled = self._cancel_end is not None or self._cancel_pending is not None
        self._set_state(CallState.ANSWERED)
        self._timer_cancel("wait", "cancel_guard")
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
        self._timer_start("conn", self.config.conn_time)
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
        return [Send(self._ack, self._route(dialog.next_hop()))]

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
        hop = self._route(fork.next_hop())
        _, actions = self._start_tx(bye, hop)
        return [Send(ack, hop), *actions]

    def _on_invite_failure(self, response: Response) -> list[Action]:
        if self.state is CallState.ENDED:
            return []
        q850 = q850_cause(response.header_values("Reason"))
        synthetic = response.received_at is None
        if self._cancel_end is not None:
            verdict = verdict_for_local_end(self._cancel_end, False)
            return self._finish(verdict, response.status, response.reason, q850, "us")
        if synthetic and response.status == 408:
            verdict = verdict_for_timeout()
        elif synthetic:
            verdict = verdict_for_transport_error()
        else:
            verdict = verdict_for_response(response.status, q850)
        trunk_failed = is_trunk_failure(
            response.status, synthetic, self._ringing_at is not None, verdict.status
        )
        return self._finish(verdict, response.status, response.reason, q850, None, trunk_failed)

    def _challenge_answer(
        self, response: Response, method: str, uri: str
    ) -> tuple[str, str] | None:
        cfg = self.config
        if cfg.username is None or cfg.password is None:
            return None
        if response.status == 401:
            challenge_name, answer_name = "WWW-Authenticate", "Authorization"
        else:
            challenge_name, answer_name = "Proxy-Authenticate", "Proxy-Authorization"
        try:
            challenge = choose(response.header_values(challenge_name))
        except DigestError as exc:
            logger.warning(
                "cannot answer challenge: %s",
                exc,
                extra={"event": "sip.auth_unsupported", "call_uuid": cfg.call_uuid},
            )
            return None
        value = authorization(
            challenge,
            method=method,
            uri=uri,
            username=cfg.username,
            password=cfg.password,
            cnonce=new_cnonce(),
        )
        return answer_name, value

    def _retry_invite_with_auth(self, response: Response) -> list[Action] | None:
        if self._auth_attempts >= MAX_AUTH_ATTEMPTS:
            return None
        stale = "stale=true" in (
            (response.header("WWW-Authenticate") or "")
            + (response.header("Proxy-Authenticate") or "")
        ).lower().replace(" ", "")
        if self._auth_attempts == 1 and not stale:
            return None  # our credentials were refused
        invite = self._invite_request()
        answer = self._challenge_answer(response, "INVITE", invite.uri)
        if answer is None:
            return None
        self._auth_attempts += 1
        self._auth_header = answer
        self._invite = self._new_invite(invite.cseq.seq + 1, answer)
        tx, actions = self._start_tx(self._invite, self.config.proxy)
        self._invite_tx = tx
        return actions

    def _retry_bye_with_auth(self, tx: ClientTransaction, response: Response) -> list[Action]:
        if tx.authenticated or self._dialog is None:
            return []
        answer = self._challenge_answer(response, "BYE", tx.request.uri)
        if answer is None:
            return []
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
            }.get(end, end.value)
            return self._send_bye(verdict_for_local_end(end, True), reason)
        if state is CallState.EARLY:
            return self._send_cancel(end)
        if state is CallState.CALLING:
            if end is LocalEnd.STOPPED:
                if self._invite_tx is not None:
                    self._invite_tx.abandon()
                return self._finish(
                    verdict_for_local_end(end, False), None, "engine stopped", None, "us"
                )
            # RFC 3261 §9.1: no CANCEL before a provisional; send it when one comes,
            # or let Timer B end the call.
            self._cancel_pending = end
        return []

    def _send_cancel(self, end: LocalEnd) -> list[Action]:
        self._cancel_pending = None
        self._cancel_end = end
        self._set_state(CallState.CANCELLING)
        self._timer_cancel("wait")
        self._timer_start("cancel_guard", self._timers_cfg.timer_b)
        _, actions = self._start_tx(build_cancel(self._invite_request()), self.config.proxy)
        return actions

    def _send_bye(self, verdict: Verdict, reason: str) -> list[Action]:
        assert self._dialog is not None
        extra: tuple[tuple[str, str], ...] = (("User-Agent", self.config.user_agent),)
        bye = self._dialog.request("BYE", via=self._via(), contact=self.config.contact, extra=extra)
        _, actions = self._start_tx(bye, self._route(self._dialog.next_hop()))
        status = self._final_code or 200
        return actions + self._finish(verdict, status, reason, None, "us")

    def _finish(
        self,
        verdict: Verdict,
        code: int | None,
        reason: str,
        q850: int | None,
        hangup_by: HangupBy | None,
        trunk_failed: bool = False,
    ) -> list[Action]:
        if self.state is CallState.ENDED:
            return []
        self._set_state(CallState.ENDED)
        self._timer_cancel("wait", "conn", "key_wait", "cancel_guard")
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
        address = response_address(request, source)
        if request.method == "ACK":
            return self._on_ack(request)
        branch = request.top_via.branch or ""
        cached = self._responded.get((branch, request.method))
        if cached is not None:
            return [Send(cached[0], cached[1])]  # a retransmission: same answer again
        dialog = self._dialog
        if dialog is None or not dialog.matches(request):
            return self._respond(request, address, source, 481, "Call/Transaction Does Not Exist")
        cseq = request.cseq.seq
        if dialog.remote_cseq is not None and cseq < dialog.remote_cseq:
            return self._respond(request, address, source, 500, "CSeq Out of Order")  # §12.2.2
        dialog.remote_cseq = cseq
        method = request.method
        if method == "BYE":
            return self._on_bye(request, address, source)
        if method == "INVITE":
            return self._on_reinvite(request, address, source)
        if method == "OPTIONS":
            extra = (("Allow", ALLOW), ("Accept", "application/sdp, application/dtmf-relay"))
            return self._respond(request, address, source, 200, "OK", extra=extra)
        if method == "INFO":
            return self._on_info(request, address, source)
        return self._respond(
            request, address, source, 501, "Not Implemented", extra=(("Allow", ALLOW),)
        )

    def _respond(
        self,
        request: Request,
        address: Address,
        source: Address,
        status: int,
        reason: str,
        *,
        extra: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> list[Action]:
        response = make_response(request, status, reason, source=source, extra=extra, body=body)
        self._responded[(request.top_via.branch or "", request.method)] = (response, address)
        if request.method != "INVITE":
            # Timer J (§17.2.2): keep answering retransmissions for 64*T1.
            self._timer_start("linger", self._timers_cfg.timer_b)
        return [Send(response, address)]

    def _on_bye(self, request: Request, address: Address, source: Address) -> list[Action]:
        actions = self._respond(request, address, source, 200, "OK")
        if self.state is CallState.ANSWERED:
            q850 = q850_cause(request.header_values("Reason"))
            actions += self._finish(
                verdict_for_far_end_bye(), 200, "BYE from the far end", q850, "callee"
            )
        return actions

    def _on_reinvite(self, request: Request, address: Address, source: Address) -> list[Action]:
        if self.state is not CallState.ANSWERED or self._media is None:
            return self._respond(request, address, source, 481, "Call/Transaction Does Not Exist")
        if self._reinvite_2xx is not None:
            return self._respond(request, address, source, 491, "Request Pending")  # §14.2
        codec = self._media.codec
        actions: list[Action] = []
        if request.body:
            # RFC 3264 §6.1: answer the offer: its payload types, our codec, its
            # telephone-event if any, its direction mirrored (hold, §8.4).
            try:
                offer = SessionDescription.parse(request.body)
                choice = negotiate(offer, codecs=(codec,))
            except SdpError:
                return self._respond(request, address, source, 488, "Not Acceptable Here")
            if choice != self._media:
                self._media = choice
                actions.append(UpdateMedia(choice))
            body = self._describe(lambda version: self._answer_sdp(offer, choice, version))
        else:
            # An offer-less re-INVITE asks us to offer (§14.2); the ACK carries the answer.
            body = self._describe(lambda version: self._offer_sdp((codec,), version))
        extra = (("Contact", self.config.contact), ("Content-Type", "application/sdp"))
        actions += self._respond(request, address, source, 200, "OK", extra=extra, body=body)
        response = self._responded[(request.top_via.branch or "", "INVITE")][0]
        # §13.3.1.4: the UAS retransmits its 2xx until the ACK comes, for 64*T1.
        self._reinvite_2xx = (response, address, request.cseq.seq)
        self._reinvite_interval = self._timers_cfg.t1
        self._timer_start("reinvite_2xx", self._reinvite_interval)
        self._timer_start("reinvite_giveup", self._timers_cfg.timer_b)
        return actions

    def _offer_sdp(self, codecs: tuple[str, ...], version: int) -> bytes:
        cfg = self.config
        return build_offer(
            cfg.rtp_address, cfg.rtp_port, session_id=cfg.session_id, version=version, codecs=codecs
        )

    def _answer_sdp(self, offer: SessionDescription, choice: MediaChoice, version: int) -> bytes:
        cfg = self.config
        return build_answer(
            offer, choice, cfg.rtp_address, cfg.rtp_port, session_id=cfg.session_id, version=version
        )

    def _describe(self, build: Callable[[int], bytes]) -> bytes:
        """Our description at the right version: RFC 3264 §8 keeps the version of an
        unchanged description and increments it for a changed one."""
        body = build(self._sdp_version)
        if self._last_sdp is not None and body != self._last_sdp:
            self._sdp_version += 1
            body = build(self._sdp_version)
        self._last_sdp = body
        return body

    def _on_ack(self, request: Request) -> list[Action]:
        pending = self._reinvite_2xx
        if pending is None or request.cseq.seq != pending[2]:
            return []
        self._reinvite_2xx = None
        self._timer_cancel("reinvite_2xx", "reinvite_giveup")
        if request.body and self._media is not None and self.state is CallState.ANSWERED:
            try:
                choice = negotiate(SessionDescription.parse(request.body), (self._media.codec,))
            except SdpError:
                return []
            if choice != self._media:
                self._media = choice
                return [UpdateMedia(choice)]
        return []

    def _on_info(self, request: Request, address: Address, source: Address) -> list[Action]:
        kind = request.content_type
        key: str | None = None
        if kind == "application/dtmf-relay":
            for line in request.body.decode("utf-8", "replace").splitlines():
                name, _, value = line.partition("=")
                if name.strip().lower() == "signal":
                    key = value.strip() or None
        elif kind == "application/dtmf":
            key = request.body.decode("utf-8", "replace").strip() or None
        elif request.body:
            return self._respond(
                request,
                address,
                source,
                415,
                "Unsupported Media Type",
                extra=(("Accept", "application/dtmf-relay, application/dtmf"),),
            )
        actions = self._respond(request, address, source, 200, "OK")
        if key is not None:
            # Some gateways send the RFC 4733 event number (10, 11) instead of * and #.
            key = {"10": "*", "11": "#"}.get(key, key).upper()
            if len(key) == 1 and key in DTMF_KEYS:
                actions += self.on_key(key)
        return actions
