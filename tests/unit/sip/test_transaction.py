"""Client transactions driven by events with an injected clock (no sleeps)."""

from __future__ import annotations

from datetime import UTC, datetime

from ivrcast.clock import FrozenClock
from ivrcast.sip.message import Request, Response
from ivrcast.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    ServerTxState,
    Timers,
    TxState,
)

T = Timers()  # T1 0.5 s, T2 4 s


def request(method: str) -> Request:
    return Request(
        method=method,
        uri="sip:100@192.0.2.1",
        headers=(
            ("Via", "SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKtest;rport"),
            ("From", "<sip:200@192.0.2.1>;tag=a"),
            ("To", "<sip:100@192.0.2.1>"),
            ("Call-ID", "tx@test"),
            ("CSeq", f"1 {method}"),
        ),
    )


def response(req: Request, status: int, to_tag: str = "b") -> Response:
    headers = tuple((k, v) for k, v in req.headers)
    headers = tuple((k, f"{v};tag={to_tag}" if k == "To" else v) for k, v in headers)
    return Response(status=status, reason="X", headers=headers, received_at=1.0)


def make(method: str) -> tuple[ClientTransaction, FrozenClock]:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    return ClientTransaction(request(method), T, clock, ("192.0.2.1", 5060)), clock


def run_timers(tx: ClientTransaction, clock: FrozenClock) -> list[tuple[float, str]]:
    """Advance to each deadline in turn; record what the transaction does."""
    out: list[tuple[float, str]] = []
    while (deadline := tx.deadline()) is not None:
        clock.advance(deadline - clock.monotonic())
        result = tx.on_timer()
        out += [(clock.monotonic(), "send")] * len(result.send)
        if result.deliver is not None:
            out.append((clock.monotonic(), f"deliver {result.deliver.status}"))
    return out


def test_timer_a_doubles_until_timer_b_gives_a_synthetic_408() -> None:
    tx, clock = make("INVITE")
    assert len(tx.start().send) == 1
    events = run_timers(tx, clock)
    assert events == [
        (0.5, "send"), (1.5, "send"), (3.5, "send"), (7.5, "send"), (15.5, "send"),
        (31.5, "send"), (32.0, "deliver 408"),
    ]  # fmt: skip
    assert tx.state is TxState.TERMINATED


def test_provisional_stops_retransmission_and_timer_b() -> None:
    tx, _ = make("INVITE")
    tx.start()
    result = tx.on_response(response(tx.request, 180))
    assert result.deliver is not None
    assert tx.state is TxState.PROCEEDING
    assert tx.deadline() is None


def test_failure_is_acked_in_the_transaction_and_again_on_retransmission() -> None:
    tx, clock = make("INVITE")
    tx.start()
    first = tx.on_response(response(tx.request, 486))
    assert first.deliver is not None
    (ack,) = first.send
    assert ack.method == "ACK"
    assert ack.top_via.branch == "z9hG4bKtest"  # same branch as the INVITE (§17.1.1.3)
    assert ack.to.tag == "b"
    assert ack.cseq.seq == 1
    again = tx.on_response(response(tx.request, 486))
    assert again.send == (ack,)
    assert again.deliver is None  # passed up once
    assert run_timers(tx, clock) == []  # Timer D just ends it
    assert tx.terminated


def test_2xx_retransmissions_reach_the_call_in_accepted() -> None:
    tx, _ = make("INVITE")
    tx.start()
    assert tx.on_response(response(tx.request, 200)).deliver is not None
    assert tx.state is TxState.ACCEPTED
    retransmission = tx.on_response(response(tx.request, 200))
    assert retransmission.deliver is not None
    assert retransmission.send == ()  # the call builds the ACK for a 2xx


def test_timer_e_caps_at_t2_and_timer_f_gives_408() -> None:
    tx, clock = make("BYE")
    tx.start()
    events = run_timers(tx, clock)
    sends = [t for t, what in events if what == "send"]
    assert sends[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]  # 0.5, 1, 2, 4, then 4 (T2)
    assert events[-1] == (32.0, "deliver 408")


def test_non_invite_final_then_timer_k() -> None:
    tx, clock = make("BYE")
    tx.start()
    assert tx.on_response(response(tx.request, 200)).deliver is not None
    assert tx.state is TxState.COMPLETED
    assert tx.on_response(response(tx.request, 200)).deliver is None
    run_timers(tx, clock)
    assert tx.terminated
    assert clock.monotonic() == T.t4


def test_transport_error_is_a_503() -> None:
    tx, _ = make("INVITE")
    tx.start()
    result = tx.on_transport_error()
    assert result.deliver is not None
    assert result.deliver.status == 503
    assert result.deliver.received_at is None


# -- server transactions (RFC 3261 §17.2) --------------------------------------------


def make_server(method: str) -> tuple[ServerTransaction, FrozenClock]:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    return ServerTransaction(request(method), T, clock, ("192.0.2.1", 5060)), clock


def run_server_timers(tx: ServerTransaction, clock: FrozenClock) -> list[float]:
    """Advance to each deadline in turn; the times at which a response is resent."""
    sent: list[float] = []
    start = clock.monotonic()
    while (deadline := tx.deadline()) is not None:
        clock.advance(deadline - clock.monotonic())
        sent += [clock.monotonic() - start] * len(tx.on_timer())
    return sent


def test_invite_failure_is_resent_on_timer_g_until_timer_h() -> None:
    tx, clock = make_server("INVITE")
    busy = response(tx.request, 486)
    assert tx.respond(busy) == (busy,)
    assert tx.state is ServerTxState.COMPLETED
    # Timer G: T1, doubling up to T2; Timer H ends it 64*T1 (32 s) after the response.
    assert run_server_timers(tx, clock) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert tx.terminated


def test_ack_stops_timer_g_and_timer_i_absorbs_the_rest() -> None:
    tx, clock = make_server("INVITE")
    tx.respond(response(tx.request, 603))
    assert tx.on_ack()
    assert tx.state is ServerTxState.CONFIRMED
    assert tx.on_retransmission() == ()
    assert run_server_timers(tx, clock) == []  # Timer I (T4) then gone, nothing resent
    assert tx.terminated


def test_retransmitted_invite_gets_the_last_provisional_then_the_final() -> None:
    tx, _ = make_server("INVITE")
    assert tx.on_retransmission() == ()  # nothing sent yet
    ringing = response(tx.request, 180)
    tx.respond(ringing)
    assert tx.on_retransmission() == (ringing,)
    busy = response(tx.request, 486)
    tx.respond(busy)
    assert tx.on_retransmission() == (busy,)
    assert tx.respond(response(tx.request, 200)) == ()  # one final response only


def test_invite_2xx_is_accepted_and_absorbs_retransmissions() -> None:
    """RFC 6026 §7.1: the 2xx is the dialog's to resend; the transaction only absorbs."""
    tx, clock = make_server("INVITE")
    tx.respond(response(tx.request, 200))
    assert tx.state is ServerTxState.ACCEPTED
    assert tx.on_retransmission() == ()
    assert not tx.on_ack()
    assert run_server_timers(tx, clock) == []  # Timer L
    assert tx.terminated


def test_non_invite_answers_retransmissions_until_timer_j() -> None:
    tx, clock = make_server("BYE")
    ok = response(tx.request, 200)
    tx.respond(ok)
    assert tx.on_retransmission() == (ok,)
    deadline = tx.deadline()
    assert deadline is not None
    assert deadline - clock.monotonic() == 64 * T.t1  # Timer J
    assert run_server_timers(tx, clock) == []
    assert tx.terminated
