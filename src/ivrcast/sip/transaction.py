"""Client (RFC 3261 §17.1) and server (§17.2) transactions with no I/O.

A client transaction takes events (`start`, `on_response`, `on_timer`) and returns a
`TxResult`: requests to (re)transmit and the response, if any, to pass up to the call.
Timer B and Timer F deliver a synthetic 408 (sippy), so a timeout takes the same path
as a response. The INVITE transaction has the Accepted state of RFC 6026, so 2xx
retransmissions reach the call, which answers each with its ACK.

A server transaction sends the responses its owner gives it (`respond`), answers a
retransmitted request with the last response (`on_retransmission`), retransmits a
non-2xx final response to an INVITE until the ACK (Timer G, giving up at Timer H) and
absorbs ACKs (Timer I) and request retransmissions (Timer J) before it ends. A 2xx to an
INVITE puts it in RFC 6026's Accepted state: the 2xx itself is retransmitted by the
dialog's owner (§13.3.1.4, `in_dialog.py`), since its ACK is a transaction of its own.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from enum import Enum

from ivrcast.clock import Clock
from ivrcast.sip.message import Request, Response

logger = logging.getLogger(__name__)

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7


@dataclass(frozen=True)
class Timers:
    """RFC 3261 §17.1.1.1 / Table 4. Tests shrink T1 to make Timer B fast."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timer_b(self) -> float:
        return 64 * self.t1  # also Timer F, Timer M and the CANCEL guard of §9.1

    @property
    def timer_d(self) -> float:
        # RFC 3261 says at least 32 s over UDP; scaled with T1 so short-T1 tests end fast.
        return 64 * self.t1


def new_branch() -> str:
    return BRANCH_MAGIC + secrets.token_hex(8)


class TxState(Enum):
    CALLING = "calling"  # INVITE only
    TRYING = "trying"  # non-INVITE only
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"  # RFC 6026, INVITE only
    COMPLETED = "completed"
    TERMINATED = "terminated"


ALLOWED: dict[TxState, frozenset[TxState]] = {
    TxState.CALLING: frozenset(
        {TxState.PROCEEDING, TxState.ACCEPTED, TxState.COMPLETED, TxState.TERMINATED}
    ),
    TxState.TRYING: frozenset({TxState.PROCEEDING, TxState.COMPLETED, TxState.TERMINATED}),
    TxState.PROCEEDING: frozenset({TxState.ACCEPTED, TxState.COMPLETED, TxState.TERMINATED}),
    TxState.ACCEPTED: frozenset({TxState.TERMINATED}),
    TxState.COMPLETED: frozenset({TxState.TERMINATED}),
    TxState.TERMINATED: frozenset(),
}


class ServerTxState(Enum):
    TRYING = "trying"  # non-INVITE only
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"  # RFC 6026, INVITE only
    COMPLETED = "completed"
    CONFIRMED = "confirmed"  # INVITE only
    TERMINATED = "terminated"


SERVER_ALLOWED: dict[ServerTxState, frozenset[ServerTxState]] = {
    ServerTxState.TRYING: frozenset(
        {ServerTxState.PROCEEDING, ServerTxState.COMPLETED, ServerTxState.TERMINATED}
    ),
    ServerTxState.PROCEEDING: frozenset(
        {ServerTxState.ACCEPTED, ServerTxState.COMPLETED, ServerTxState.TERMINATED}
    ),
    ServerTxState.ACCEPTED: frozenset({ServerTxState.TERMINATED}),
    ServerTxState.COMPLETED: frozenset({ServerTxState.CONFIRMED, ServerTxState.TERMINATED}),
    ServerTxState.CONFIRMED: frozenset({ServerTxState.TERMINATED}),
    ServerTxState.TERMINATED: frozenset(),
}


@dataclass(frozen=True)
class TxResult:
    send: tuple[Request, ...] = ()
    deliver: Response | None = None


NOTHING = TxResult()


def synthetic_response(request: Request, status: int, reason: str) -> Response:
    """A locally generated final response (Timer B/F, transport error); `received_at`
    stays None, which is how the call tells it from a real one."""
    keep = ("Via", "From", "To", "Call-ID", "CSeq")
    headers = tuple((k, v) for k, v in request.headers if k in keep)
    return Response(status=status, reason=reason, headers=headers)


class ClientTransaction:
    def __init__(
        self,
        request: Request,
        timers: Timers,
        clock: Clock,
        destination: tuple[str, int],
    ) -> None:
        self.request = request
        self.destination = destination  # where it (and its retransmissions) go
        self.authenticated = any(
            k in ("Authorization", "Proxy-Authorization") for k, _ in request.headers
        )
        self.method = request.method
        self.branch = request.top_via.branch or ""
        self.invite = request.method == "INVITE"
        self._timers = timers
        self._clock = clock
        self.state = TxState.CALLING if self.invite else TxState.TRYING
        self._ack: Request | None = None
        self._retransmit_at: float | None = None
        self._interval = timers.t1
        self._end_at: float | None = None  # Timer B/F, then D/K/M

    def _set_state(self, state: TxState) -> None:
        if state not in ALLOWED[self.state]:
            raise RuntimeError(f"transaction {self.branch}: {self.state} -> {state} not allowed")
        logger.debug(
            "transaction %s %s: %s -> %s",
            self.method,
            self.branch,
            self.state.value,
            state.value,
            extra={"event": "sip.tx_state", "sip_branch": self.branch},
        )
        self.state = state

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED

    def deadline(self) -> float | None:
        times = [t for t in (self._retransmit_at, self._end_at) if t is not None]
        return min(times) if times else None

    def start(self) -> TxResult:
        now = self._clock.monotonic()
        self._retransmit_at = now + self._interval  # Timer A / Timer E
        self._end_at = now + self._timers.timer_b  # Timer B / Timer F
        return TxResult(send=(self.request,))

    def on_transport_error(self) -> TxResult:
        """RFC 3261 §17.1.1.2 / §8.1.3.1: the request could not be sent: a 503."""
        if self.state in (TxState.CALLING, TxState.TRYING, TxState.PROCEEDING):
            self._terminate()
            return TxResult(deliver=synthetic_response(self.request, 503, "Transport Error"))
        return NOTHING

    def on_response(self, response: Response) -> TxResult:
        if self.invite:
            return self._invite_response(response)
        return self._non_invite_response(response)

    def _invite_response(self, response: Response) -> TxResult:
        code = response.status
        state = self.state
        if state in (TxState.CALLING, TxState.PROCEEDING):
            if code < 200:
                if state is TxState.CALLING:
                    self._set_state(TxState.PROCEEDING)
                    self._retransmit_at = None  # no retransmissions once a 1xx came
                    self._end_at = None  # Timer B covers the Calling state only
                return TxResult(deliver=response)
            if code < 300:
                self._set_state(TxState.ACCEPTED)
                self._retransmit_at = None
                self._end_at = self._clock.monotonic() + self._timers.timer_b  # Timer M
                return TxResult(deliver=response)
            self._set_state(TxState.COMPLETED)
            self._retransmit_at = None
            self._end_at = self._clock.monotonic() + self._timers.timer_d  # Timer D
            self._ack = build_ack_for_failure(self.request, response)
            return TxResult(send=(self._ack,), deliver=response)
        if state is TxState.ACCEPTED and 200 <= code < 300:
            return TxResult(deliver=response)  # the call ACKs each 2xx retransmission
        if state is TxState.COMPLETED and code >= 300 and self._ack is not None:
            return TxResult(send=(self._ack,))  # §17.1.1.2: ACK each retransmission
        return NOTHING

    def _non_invite_response(self, response: Response) -> TxResult:
        if self.state not in (TxState.TRYING, TxState.PROCEEDING):
            return NOTHING  # Completed absorbs retransmissions (Timer K)
        if response.status < 200:
            if self.state is TxState.TRYING:
                self._set_state(TxState.PROCEEDING)
            return TxResult(deliver=response)
        self._set_state(TxState.COMPLETED)
        self._retransmit_at = None
        self._end_at = self._clock.monotonic() + self._timers.t4  # Timer K
        return TxResult(deliver=response)

    def on_timer(self) -> TxResult:
        now = self._clock.monotonic()
        if self._end_at is not None and now >= self._end_at:
            return self._end_timer_expired()
        if self._retransmit_at is not None and now >= self._retransmit_at:
            if self.invite:
                self._interval *= 2  # Timer A doubles without a cap (§17.1.1.2)
            elif self.state is TxState.PROCEEDING:
                self._interval = self._timers.t2  # §17.1.2.2
            else:
                self._interval = min(self._interval * 2, self._timers.t2)  # Timer E
            self._retransmit_at = now + self._interval
            return TxResult(send=(self.request,))
        return NOTHING

    def _end_timer_expired(self) -> TxResult:
        if self.state in (TxState.CALLING, TxState.TRYING, TxState.PROCEEDING):
            self._terminate()
            name = "Timer B" if self.invite else "Timer F"
            return TxResult(
                deliver=synthetic_response(self.request, 408, f"Request Timeout ({name})")
            )
        self._terminate()
        return NOTHING

    def _terminate(self) -> None:
        self._set_state(TxState.TERMINATED)
        self._retransmit_at = None
        self._end_at = None

    def abandon(self) -> None:
        """Forget the transaction (the call gave up waiting, e.g. after CANCEL)."""
        if self.state is not TxState.TERMINATED:
            self._terminate()


class ServerTransaction:
    """One request from the far end and our responses to it (RFC 3261 §17.2).

    `address` is where responses go (§18.2.2, `message.response_address`)."""

    def __init__(
        self, request: Request, timers: Timers, clock: Clock, address: tuple[str, int]
    ) -> None:
        self.request = request
        self.address = address
        self.method = request.method
        self.branch = request.top_via.branch or ""
        self.invite = request.method == "INVITE"
        self._timers = timers
        self._clock = clock
        self.state = ServerTxState.PROCEEDING if self.invite else ServerTxState.TRYING
        self.last_response: Response | None = None
        self._retransmit_at: float | None = None  # Timer G
        self._interval = timers.t1
        self._end_at: float | None = None  # Timer H, I, J or L

    def _set_state(self, state: ServerTxState) -> None:
        if state not in SERVER_ALLOWED[self.state]:
            raise RuntimeError(f"server transaction {self.branch}: {self.state} -> {state}")
        logger.debug(
            "server transaction %s %s: %s -> %s",
            self.method,
            self.branch,
            self.state.value,
            state.value,
            extra={"event": "sip.server_tx_state", "sip_branch": self.branch},
        )
        self.state = state

    @property
    def terminated(self) -> bool:
        return self.state is ServerTxState.TERMINATED

    @property
    def answered(self) -> bool:
        """A final response has been sent."""
        return self.state not in (ServerTxState.TRYING, ServerTxState.PROCEEDING)

    def deadline(self) -> float | None:
        times = [t for t in (self._retransmit_at, self._end_at) if t is not None]
        return min(times) if times else None

    def respond(self, response: Response) -> tuple[Response, ...]:
        """Send `response`; after a final response, further ones are ignored."""
        if self.answered:
            return ()
        self.last_response = response
        now = self._clock.monotonic()
        if response.status < 200:
            if self.state is ServerTxState.TRYING:
                self._set_state(ServerTxState.PROCEEDING)
        elif not self.invite:
            self._set_state(ServerTxState.COMPLETED)
            self._end_at = now + self._timers.timer_b  # Timer J (§17.2.2), 64*T1 on UDP
        elif response.status < 300:
            self._set_state(ServerTxState.ACCEPTED)
            self._end_at = now + self._timers.timer_b  # Timer L (RFC 6026 §8.7)
        else:
            self._set_state(ServerTxState.COMPLETED)
            self._interval = self._timers.t1
            self._retransmit_at = now + self._interval  # Timer G
            self._end_at = now + self._timers.timer_b  # Timer H
        return (response,)

    def on_retransmission(self) -> tuple[Response, ...]:
        """The request came again: the last response again (§17.2.1, §17.2.2); in the
        Accepted and Confirmed states the retransmission is absorbed."""
        answerable = self.state in (ServerTxState.PROCEEDING, ServerTxState.COMPLETED)
        if answerable and self.last_response is not None:
            return (self.last_response,)
        return ()

    def on_ack(self) -> bool:
        """The ACK of our non-2xx final response: stop Timer G, absorb further ACKs
        for Timer I. False when this transaction waits for no ACK."""
        if self.state is not ServerTxState.COMPLETED or not self.invite:
            return False
        self._set_state(ServerTxState.CONFIRMED)
        self._retransmit_at = None
        self._end_at = self._clock.monotonic() + self._timers.t4  # Timer I
        return True

    def on_timer(self) -> tuple[Response, ...]:
        now = self._clock.monotonic()
        if self._end_at is not None and now >= self._end_at:
            if self.state is ServerTxState.COMPLETED and self.invite:
                logger.info(
                    "no ACK for %s to INVITE (Timer H)",
                    self.last_response.status if self.last_response else None,
                    extra={"event": "sip.timer_h", "sip_branch": self.branch},
                )
            self._set_state(ServerTxState.TERMINATED)
            self._retransmit_at = self._end_at = None
            return ()
        if self._retransmit_at is not None and now >= self._retransmit_at:
            self._interval = min(self._interval * 2, self._timers.t2)  # Timer G
            self._retransmit_at = now + self._interval
            assert self.last_response is not None
            return (self.last_response,)
        return ()


def build_ack_for_failure(invite: Request, response: Response) -> Request:
    """RFC 3261 §17.1.1.3: the ACK for a non-2xx final is part of the INVITE transaction
    (same branch, same Request-URI, the response's To)."""
    headers: list[tuple[str, str]] = [("Via", invite.header_values("Via")[0])]
    for name in ("Route",):
        headers += [(name, v) for v in invite.header_values(name)]
    headers += [
        ("Max-Forwards", "70"),
        ("From", invite.header("From") or ""),
        ("To", response.header("To") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    return Request(method="ACK", uri=invite.uri, headers=tuple(headers))


def build_cancel(invite: Request) -> Request:
    """RFC 3261 §9.1: CANCEL copies the INVITE's Request-URI, top Via (so its branch),
    Call-ID, From, To, Route and CSeq number."""
    headers: list[tuple[str, str]] = [("Via", invite.header_values("Via")[0])]
    headers += [("Route", v) for v in invite.header_values("Route")]
    headers += [
        ("Max-Forwards", "70"),
        ("From", invite.header("From") or ""),
        ("To", invite.header("To") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} CANCEL"),
    ]
    return Request(method="CANCEL", uri=invite.uri, headers=tuple(headers))
