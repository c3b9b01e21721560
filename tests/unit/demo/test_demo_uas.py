"""The demo carrier's UAS, driven by events with an injected clock: no sockets, no sleeps.
Each test plays what a caller sends and checks what the demo answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivrcast.clock import FrozenClock
from ivrcast.demo.uas import (
    DemoAction,
    DemoCall,
    DemoState,
    Local,
    Pacing,
    PressKey,
)
from ivrcast.sip.actions import Send, StartMedia, StopMedia, UpdateMedia
from ivrcast.sip.message import Request, Response
from ivrcast.sip.sdp import SessionDescription, build_offer
from ivrcast.sip.transaction import Timers

CALLER = ("192.0.2.9", 5070)
OFFER = build_offer("192.0.2.9", 40000, session_id=1)
T = Timers()


def request(
    method: str, dest: str, *, cseq: int = 1, branch: str = "inv", tag: str | None = None,
    body: bytes = b"",
) -> Request:  # fmt: skip
    to = f"<sip:{dest}@192.0.2.1>" + (f";tag={tag}" if tag else "")
    headers = [
        ("Via", f"SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bK{branch};rport"),
        ("From", "<sip:10000@192.0.2.1>;tag=caller"),
        ("To", to),
        ("Call-ID", "demo@test"),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", "<sip:ivrcast@192.0.2.9:5070>"),
    ]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return Request(method, f"sip:{dest}@192.0.2.1:5060", tuple(headers), body)


class Caller:
    def __init__(self, dest: str) -> None:
        self.clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
        self.invite = request("INVITE", dest, body=OFFER)
        self.call = DemoCall(
            self.invite, CALLER, local=Local("192.0.2.1", 5060, 30000), pacing=Pacing(),
            clock=self.clock, timers=T,
        )  # fmt: skip
        self.actions: list[DemoAction] = self.call.start()

    def send(self, req: Request) -> list[DemoAction]:
        out = self.call.on_request(req, CALLER)
        self.actions += out
        return out

    def advance(self, seconds: float) -> list[DemoAction]:
        end = self.clock.monotonic() + seconds
        out: list[DemoAction] = []
        while (d := self.call.deadline()) is not None and d <= end:
            self.clock.advance(d - self.clock.monotonic())
            out += self.call.on_timer()
        self.clock.advance(end - self.clock.monotonic())
        self.actions += out
        return out

    @property
    def tag(self) -> str:
        tagged = [
            a.message.to.tag
            for a in self.actions
            if isinstance(a, Send) and isinstance(a.message, Response) and a.message.status > 100
        ]
        tag = tagged[0]
        assert tag is not None
        return tag

    def ack(self, cseq: int = 1) -> list[DemoAction]:
        return self.send(request("ACK", "x", cseq=cseq, branch=f"ack{cseq}", tag=self.tag))

    def answered(self) -> None:
        self.advance(1.0)
        assert responses(self.actions, 200)
        self.ack()
        assert self.call.state is DemoState.CONFIRMED


def responses(actions: list[DemoAction], status: int) -> list[Response]:
    return [
        a.message
        for a in actions
        if isinstance(a, Send) and isinstance(a.message, Response) and a.message.status == status
    ]


def test_answer_after_a_second_with_an_rfc_3264_answer_and_media_on_the_ack() -> None:
    c = Caller("628120000010")
    assert [r.status for r in responses(c.actions, 100) + responses(c.actions, 180)] == [100, 180]
    assert responses(c.actions, 100)[0].to.tag is None  # 100 carries no tag (§8.2.6.2)
    # A retransmitted INVITE gets the 180 again.
    assert [r.status for r in responses(c.send(c.invite), 180)] == [180]
    c.advance(1.0)
    (ok,) = responses(c.actions, 200)
    audio = SessionDescription.parse(ok.body).audio()
    assert audio is not None
    assert (audio.port, audio.formats, audio.direction) == (30000, (0, 101), "sendrecv")
    assert responses(c.advance(0.5), 200)  # resent until the ACK (§13.3.1.4)
    media = c.ack()
    (start,) = [a for a in media if isinstance(a, StartMedia)]
    assert (start.choice.address, start.choice.port, start.choice.codec) == (
        "192.0.2.9", 40000, "PCMU",
    )  # fmt: skip
    assert responses(c.advance(4.0), 200) == []


@pytest.mark.parametrize(("digit", "status"), [("5", 486), ("7", 404), ("8", 603)])
def test_failures_are_resent_until_their_ack(digit: str, status: int) -> None:
    c = Caller(f"62812000001{digit}")
    assert len(responses(c.actions, status)) == 1
    assert len(responses(c.advance(1.6), status)) == 2  # Timer G: 0.5 s, then 1 s later
    c.send(request("ACK", "x", branch="inv", tag=c.tag))  # same branch: the transaction's
    assert responses(c.advance(10.0), status) == []
    assert c.call.finished


def test_press_1_a_second_after_the_answer() -> None:
    c = Caller("628120000014")
    c.answered()
    assert [a for a in c.advance(1.0) if isinstance(a, PressKey)] == [PressKey("1")]


def test_hang_up_after_two_seconds_and_the_bye_is_retransmitted_until_answered() -> None:
    c = Caller("628120000019")
    c.answered()
    out = c.advance(2.0)
    byes = [a for a in out if isinstance(a, Send) and isinstance(a.message, Request)]
    assert [b.message.method for b in byes] == ["BYE"]  # type: ignore[union-attr]
    assert any(isinstance(a, StopMedia) for a in out)
    bye = byes[0].message
    assert isinstance(bye, Request)
    assert bye.uri == "sip:ivrcast@192.0.2.9:5070"  # the caller's Contact (§12.1.1)
    assert byes[0].address == ("192.0.2.9", 5070)
    assert bye.to.tag == "caller"
    assert bye.from_.tag == c.tag
    resent = [a for a in c.advance(0.5) if isinstance(a, Send)]
    assert [s.message for s in resent] == [bye]  # Timer E
    headers = tuple((k, v) for k, v in bye.headers if k in ("Via", "From", "To", "Call-ID", "CSeq"))
    c.call.on_response(Response(200, "OK", headers, received_at=0.0))
    assert c.call.state is DemoState.ENDED


def test_cancel_while_ringing_is_487() -> None:
    c = Caller("628120000016")
    out = c.send(request("CANCEL", "628120000016", branch="inv"))
    assert responses(out, 200)
    assert responses(out, 487)
    assert c.call.state is DemoState.REJECTED


def test_callers_bye_ends_the_call_and_is_answered_again_when_repeated() -> None:
    c = Caller("628120000010")
    c.answered()
    bye = request("BYE", "x", cseq=2, branch="bye", tag=c.tag)
    out = c.send(bye)
    assert responses(out, 200)
    assert any(isinstance(a, StopMedia) for a in out)
    assert responses(c.send(bye), 200)  # Timer J
    assert c.call.state is DemoState.ENDED


def test_hold_reinvite_is_answered_with_the_mirrored_direction() -> None:
    c = Caller("628120000010")
    c.answered()
    held = OFFER.replace(b"a=sendrecv", b"a=sendonly")
    out = c.send(request("INVITE", "x", cseq=2, branch="hold", tag=c.tag, body=held))
    (ok,) = responses(out, 200)
    assert b"a=recvonly" in ok.body
    (update,) = [a for a in out if isinstance(a, UpdateMedia)]
    assert not update.choice.far_end_receives
