"""The server side of a dialog, as the demo carrier's UAS and the UAC both use it:
transactions per request, 2xx retransmission until the ACK, CANCEL, 491. Injected clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from ivrcast.clock import FrozenClock
from ivrcast.sip.actions import Send
from ivrcast.sip.dialog import Dialog
from ivrcast.sip.in_dialog import (
    AckReceived,
    CancelReceived,
    DialogServer,
    InviteReceived,
)
from ivrcast.sip.message import Request, Response
from ivrcast.sip.transaction import Timers

FAR = ("192.0.2.1", 5060)
T = Timers()


def far_request(method: str, cseq: int, *, branch: str, tag: str | None = None) -> Request:
    to = "<sip:100@192.0.2.9>" + (f";tag={tag}" if tag else "")
    headers = (
        ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch}"),
        ("From", "<sip:200@192.0.2.1>;tag=far"),
        ("To", to),
        ("Call-ID", "d@test"),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", "<sip:200@192.0.2.1:5060>"),
    )
    return Request(method, "sip:100@192.0.2.9", headers)


def statuses(sends: list[Send]) -> list[int]:
    return [s.message.status for s in sends if isinstance(s.message, Response)]


def uas() -> tuple[DialogServer, FrozenClock]:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    return DialogServer(clock=clock, timers=T, allow="INVITE, ACK", local_tag="ours"), clock


def test_uas_answers_an_invite_and_resends_its_2xx_until_the_ack() -> None:
    server, clock = uas()
    invite = far_request("INVITE", 1, branch="i1")
    server.receive(invite, FAR)
    (ringing,) = server.respond(invite, 180, "Ringing")
    assert isinstance(ringing.message, Response)
    assert ringing.message.to.tag == "ours"  # the UAS's tag on a dialog-creating INVITE
    assert statuses(server.accept_invite(invite, extra=(), body=b"")) == [200]
    assert server.awaiting_ack
    resent: list[float] = []
    for _ in range(3):
        deadline = server.deadline()
        assert deadline is not None
        clock.advance(deadline - clock.monotonic())
        if statuses(server.on_timer()) == [200]:
            resent.append(clock.monotonic())
    assert [round(b - a, 3) for a, b in itertools.pairwise(resent)] == [1.0, 2.0]
    # A retransmitted INVITE is absorbed now (RFC 6026); the ACK stops the 2xx.
    assert server.on_request(invite, FAR, None) == ([], None)
    ack = far_request("ACK", 1, branch="a1", tag="ours")
    sends, incoming = server.on_request(ack, FAR, None)
    assert (sends, incoming) == ([], AckReceived(ack))
    assert not server.awaiting_ack


def test_unacknowledged_2xx_is_given_up_after_64_t1() -> None:
    server, clock = uas()
    invite = far_request("INVITE", 1, branch="i1")
    server.receive(invite, FAR)
    server.accept_invite(invite, extra=(), body=b"")
    sent = 0
    while (deadline := server.deadline()) is not None:
        clock.advance(deadline - clock.monotonic())
        sent += len(server.on_timer())
    assert not server.awaiting_ack
    assert clock.monotonic() >= 64 * T.t1
    assert sent == 10  # at 0.5, 1.5, 3.5, 7.5, then every 4 s up to 32 s (§13.3.1.4)


def test_cancel_of_an_unanswered_invite_then_of_an_answered_one() -> None:
    server, _ = uas()
    invite = far_request("INVITE", 1, branch="i1")
    server.receive(invite, FAR)
    server.respond(invite, 180, "Ringing")
    cancel = far_request("CANCEL", 1, branch="i1")
    sends, incoming = server.on_request(cancel, FAR, None)
    assert statuses(sends) == [200]
    assert incoming == CancelReceived(invite)
    assert statuses(server.respond(invite, 487, "Request Terminated")) == [487]
    # The CANCEL again: its transaction answers 200 again; a CANCEL of another branch 481.
    assert statuses(server.on_request(cancel, FAR, None)[0]) == [200]
    other = far_request("CANCEL", 1, branch="other")
    assert statuses(server.on_request(other, FAR, None)[0]) == [481]


def test_cancel_after_the_answer_is_200_and_changes_nothing() -> None:
    """§9.2: the CANCEL matched a transaction, so 200; the answered INVITE stands."""
    server, _ = uas()
    invite = far_request("INVITE", 1, branch="i1")
    server.receive(invite, FAR)
    server.accept_invite(invite, extra=(), body=b"")
    sends, incoming = server.on_request(far_request("CANCEL", 1, branch="i1"), FAR, None)
    assert statuses(sends) == [200]
    assert incoming is None
    assert server.awaiting_ack


def test_reinvite_while_a_2xx_waits_for_its_ack_is_491() -> None:
    server, _ = uas()
    invite = far_request("INVITE", 1, branch="i1")
    server.receive(invite, FAR)
    server.accept_invite(invite, extra=(), body=b"")
    dialog = Dialog(
        call_id="d@test", local_tag="ours", remote_tag="far", local="", remote="",
        remote_target="sip:200@192.0.2.1:5060", route_set=(), local_cseq=1, remote_cseq=1,
    )  # fmt: skip
    again = far_request("INVITE", 2, branch="i2", tag="ours")
    assert statuses(server.on_request(again, FAR, dialog)[0]) == [491]
    server.on_request(far_request("ACK", 1, branch="a1", tag="ours"), FAR, dialog)
    third = far_request("INVITE", 3, branch="i3", tag="ours")
    assert server.on_request(third, FAR, dialog) == ([], InviteReceived(third))
