"""The server side of a dialog (RFC 3261 §12.2.2, §13.3.1.4, §17.2) with no I/O, shared
by the UAC (`call.py`) and the demo carrier's UAS (`demo/uas.py`).

`DialogServer` answers the far end's requests. Each request gets a server transaction
(`transaction.ServerTransaction`), so a retransmission is answered with the same response
and a finished transaction absorbs retransmissions for Timer J. A request outside the
dialog gets 481, a CSeq that went backwards 500 (§12.2.2), OPTIONS our Allow, INFO a 200
and its DTMF key (application/dtmf-relay or application/dtmf). What needs the owner comes
back as an `Incoming` value: a BYE or a CANCEL (both already answered 200), an INVITE
(the owner answers with `accept_invite` or `respond`), the ACK of our 2xx, a key.

`accept_invite` sends a 2xx and retransmits it, T1 doubling up to T2, until its ACK or
64*T1 (§13.3.1.4): the ACK of a 2xx is a transaction of its own, so this is the dialog's
work, not the INVITE transaction's. Only one INVITE is answered at a time (§14.2: 491).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from ivrcast.clock import Clock
from ivrcast.rtp.dtmf import DTMF_KEYS
from ivrcast.sip.actions import Address, Send
from ivrcast.sip.dialog import Dialog
from ivrcast.sip.message import Request, Response, make_response, response_address
from ivrcast.sip.transaction import ServerTransaction, Timers

logger = logging.getLogger(__name__)

DTMF_TYPES = "application/dtmf-relay, application/dtmf"
# Some gateways send the RFC 4733 event number (10, 11) instead of * and #.
EVENT_NUMBERS = {"10": "*", "11": "#"}


class ServerTimer(Enum):
    RETRANSMIT_2XX = "2xx retransmission"  # RFC 3261 §13.3.1.4: T1, doubling up to T2
    ACK_WAIT = "2xx ACK wait"  # §13.3.1.4: no ACK 64*T1 after the 2xx: stop resending


@dataclass(frozen=True)
class ByeReceived:
    request: Request


@dataclass(frozen=True)
class CancelReceived:
    invite: Request  # the INVITE it cancels, still unanswered (§9.2)


@dataclass(frozen=True)
class InviteReceived:
    request: Request


@dataclass(frozen=True)
class AckReceived:
    request: Request  # the ACK of our 2xx; it may carry the answer to our offer


@dataclass(frozen=True)
class KeyReceived:
    key: str


Incoming = ByeReceived | CancelReceived | InviteReceived | AckReceived | KeyReceived


@dataclass
class _Pending2xx:
    response: Response
    address: Address
    cseq: int
    interval: float


class DialogServer:
    def __init__(
        self,
        *,
        clock: Clock,
        timers: Timers,
        allow: str,
        local_tag: str | None = None,
        label: str = "",
    ) -> None:
        """`allow`: our Allow header value; `local_tag`: a UAS's To tag, added to the
        responses to the dialog-creating INVITE; `label`: the call's id, for logs."""
        self._clock = clock
        self._timers = timers
        self._allow = allow
        self._local_tag = local_tag
        self._label = label
        self._transactions: dict[tuple[str, str], tuple[ServerTransaction, Address]] = {}
        self._pending: _Pending2xx | None = None
        self._timer_at: dict[ServerTimer, float] = {}

    # -- timers ------------------------------------------------------------------

    def deadline(self) -> float | None:
        times = list(self._timer_at.values())
        for tx, _ in self._transactions.values():
            if (at := tx.deadline()) is not None:
                times.append(at)
        return min(times) if times else None

    def on_timer(self) -> list[Send]:
        now = self._clock.monotonic()
        sends: list[Send] = []
        for key, (tx, _) in list(self._transactions.items()):
            at = tx.deadline()
            if at is not None and now >= at:
                sends += [Send(r, tx.address) for r in tx.on_timer()]
            if tx.terminated:
                del self._transactions[key]
        if self._expired(ServerTimer.ACK_WAIT, now):
            logger.info(
                "no ACK for our 2xx",
                extra={"event": "sip.no_ack", "call_uuid": self._label},
            )
            self._pending = None
            self._timer_at.pop(ServerTimer.RETRANSMIT_2XX, None)
        if self._expired(ServerTimer.RETRANSMIT_2XX, now) and self._pending is not None:
            pending = self._pending
            pending.interval = min(pending.interval * 2, self._timers.t2)
            self._timer_at[ServerTimer.RETRANSMIT_2XX] = now + pending.interval
            sends.append(Send(pending.response, pending.address))
        return sends

    def _expired(self, timer: ServerTimer, now: float) -> bool:
        at = self._timer_at.get(timer)
        if at is None or now < at:
            return False
        del self._timer_at[timer]
        return True

    @property
    def awaiting_ack(self) -> bool:
        """A 2xx of ours to an INVITE waits for its ACK."""
        return self._pending is not None

    @property
    def idle(self) -> bool:
        """Nothing left to retransmit or absorb."""
        return self.deadline() is None

    # -- requests ----------------------------------------------------------------

    def on_request(
        self, request: Request, source: Address, dialog: Dialog | None
    ) -> tuple[list[Send], Incoming | None]:
        """Answer what can be answered without the owner; hand the rest up."""
        branch = request.top_via.branch or ""
        if request.method == "ACK":
            return [], self._on_ack(request, branch)
        known = self._transactions.get((branch, request.method))
        if known is not None:
            tx, _ = known
            return [Send(r, tx.address) for r in tx.on_retransmission()], None
        if request.method == "CANCEL":
            return self._on_cancel(request, source, branch)
        if dialog is None or not dialog.matches(request):
            return self.respond_new(request, source, 481, "Call/Transaction Does Not Exist"), None
        cseq = request.cseq.seq
        if dialog.remote_cseq is not None and cseq < dialog.remote_cseq:
            return self.respond_new(request, source, 500, "CSeq Out of Order"), None
        dialog.remote_cseq = cseq
        return self._in_dialog(request, source)

    def receive(self, request: Request, source: Address) -> None:
        """Open the server transaction of a request the owner answers itself (a UAS's
        dialog-creating INVITE) so that its retransmissions and ACK are handled here."""
        tx = ServerTransaction(
            request, self._timers, self._clock, response_address(request, source)
        )
        self._transactions[(tx.branch, tx.method)] = (tx, source)

    def _in_dialog(self, request: Request, source: Address) -> tuple[list[Send], Incoming | None]:
        method = request.method
        if method == "BYE":
            return self.respond_new(request, source, 200, "OK"), ByeReceived(request)
        if method == "INVITE":
            if self._pending is not None or self._invite_in_progress():
                return self.respond_new(request, source, 491, "Request Pending"), None
            self.receive(request, source)
            return [], InviteReceived(request)
        if method == "OPTIONS":
            extra = (("Allow", self._allow), ("Accept", f"application/sdp, {DTMF_TYPES}"))
            return self.respond_new(request, source, 200, "OK", extra=extra), None
        if method == "INFO":
            return self._on_info(request, source)
        allow = (("Allow", self._allow),)
        return self.respond_new(request, source, 501, "Not Implemented", extra=allow), None

    def _invite_in_progress(self) -> bool:
        return any(tx.invite and not tx.answered for tx, _ in self._transactions.values())

    def _on_ack(self, request: Request, branch: str) -> Incoming | None:
        known = self._transactions.get((branch, "INVITE"))
        if known is not None and known[0].on_ack():
            return None  # the ACK of a failure response: the transaction's (§17.2.1)
        pending = self._pending
        if pending is None or request.cseq.seq != pending.cseq:
            return None
        self._pending = None
        self._timer_at.pop(ServerTimer.RETRANSMIT_2XX, None)
        self._timer_at.pop(ServerTimer.ACK_WAIT, None)
        return AckReceived(request)

    def _on_cancel(
        self, request: Request, source: Address, branch: str
    ) -> tuple[list[Send], Incoming | None]:
        """RFC 3261 §9.2: a CANCEL matching an INVITE transaction (by its branch) is
        answered 200, one matching none 481; only an unanswered INVITE is cancelled."""
        known = self._transactions.get((branch, "INVITE"))
        if known is None:
            return self.respond_new(request, source, 481, "Call/Transaction Does Not Exist"), None
        ok = self.respond_new(request, source, 200, "OK")
        invite = known[0]
        return ok, None if invite.answered else CancelReceived(invite.request)

    def _on_info(self, request: Request, source: Address) -> tuple[list[Send], Incoming | None]:
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
            extra = (("Accept", DTMF_TYPES),)
            return self.respond_new(
                request, source, 415, "Unsupported Media Type", extra=extra
            ), None
        sends = self.respond_new(request, source, 200, "OK")
        if key is not None:
            key = EVENT_NUMBERS.get(key, key).upper()
            if len(key) == 1 and key in DTMF_KEYS:
                return sends, KeyReceived(key)
        return sends, None

    # -- responses ---------------------------------------------------------------

    def respond_new(
        self,
        request: Request,
        source: Address,
        status: int,
        reason: str,
        *,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> list[Send]:
        """Open a transaction for `request` and answer it at once."""
        self.receive(request, source)
        return self.respond(request, status, reason, extra=extra)

    def respond(
        self,
        request: Request,
        status: int,
        reason: str,
        *,
        extra: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> list[Send]:
        """Answer `request` through its transaction (opened by `receive`)."""
        tx, source = self._transactions[(request.top_via.branch or "", request.method)]
        tag = self._local_tag if status > 100 else None
        response = make_response(
            request, status, reason, source=source, extra=extra, body=body, to_tag=tag
        )
        return [Send(r, tx.address) for r in tx.respond(response)]

    def accept_invite(
        self, request: Request, *, extra: tuple[tuple[str, str], ...], body: bytes
    ) -> list[Send]:
        """A 2xx to the INVITE `request`, retransmitted until its ACK (§13.3.1.4)."""
        sends = self.respond(request, 200, "OK", extra=extra, body=body)
        if not sends:
            return []
        tx, _ = self._transactions[(request.top_via.branch or "", "INVITE")]
        assert tx.last_response is not None
        interval = self._timers.t1
        self._pending = _Pending2xx(tx.last_response, tx.address, request.cseq.seq, interval)
        now = self._clock.monotonic()
        self._timer_at[ServerTimer.RETRANSMIT_2XX] = now + interval
        self._timer_at[ServerTimer.ACK_WAIT] = now + self._timers.timer_b
        return sends
