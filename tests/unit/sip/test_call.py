"""The call state machine, driven by events with an injected clock: no sockets, no
sleeps. Each test plays one script of responses/requests and checks actions and outcome."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivrcast.clock import FrozenClock
from ivrcast.sip.actions import Action, Emit, Finish, Send, StartMedia, UpdateMedia
from ivrcast.sip.call import Call, CallConfig, CallState
from ivrcast.sip.message import Request, Response
from ivrcast.sip.outcome import CallOutcome
from ivrcast.sip.sdp import build_offer

PEER = ("192.0.2.1", 5060)
ANSWER = build_offer("192.0.2.1", 30000, session_id=1, codecs=("PCMA",))


class Harness:
    def __init__(self, **overrides: object) -> None:
        self.clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
        fields: dict[str, object] = {
            "call_uuid": "u1", "call_id": "c1@test", "local_tag": "ours",
            "request_uri": "sip:100@192.0.2.1:5060", "from_uri": "sip:200@192.0.2.1",
            "to_uri": "sip:100@192.0.2.1", "contact": "<sip:ivrcast@192.0.2.9:5060>",
            "via_host": "192.0.2.9", "via_port": 5060, "proxy": PEER,
            "rtp_address": "192.0.2.9", "rtp_port": 40000, "session_id": 9,
            "wait_time": 30.0, "conn_time": 60.0, "collect_keys": False, "key_wait": 5.0,
        }  # fmt: skip
        fields.update(overrides)
        self.call = Call(CallConfig(**fields), self.clock)  # type: ignore[arg-type]
        self.actions = self.call.start()

    @property
    def invite(self) -> Request:
        sent = [a.message for a in self.actions if isinstance(a, Send)]
        invites = [m for m in sent if isinstance(m, Request) and m.method == "INVITE"]
        return invites[-1]

    def respond(
        self,
        status: int,
        *,
        to: Request | None = None,
        body: bytes = b"",
        tag: str = "theirs",
        extra: tuple[tuple[str, str], ...] = (),
    ) -> list[Action]:
        req = to or self.invite
        headers = [(k, v) for k, v in req.headers if k in ("Via", "From", "Call-ID", "CSeq")]
        to_value = req.header("To") or ""
        if status > 100 and ";tag=" not in to_value:
            to_value += f";tag={tag}"
        headers += [("To", to_value), ("Contact", "<sip:far@192.0.2.1:5060>"), *extra]
        response = Response(status, "R", tuple(headers), body, received_at=0.0)
        actions = self.call.on_response(response)
        self.actions += actions
        return actions

    def answer(self) -> list[Action]:
        self.respond(180)
        return self.respond(200, body=ANSWER)

    def far_request(
        self, method: str, cseq: int, *, body: bytes = b"", ctype: str = ""
    ) -> list[Action]:
        headers = [
            ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfar{method}{cseq}"),
            ("From", "<sip:100@192.0.2.1>;tag=theirs"),
            ("To", "<sip:200@192.0.2.1>;tag=ours"),
            ("Call-ID", "c1@test"),
            ("CSeq", f"{cseq} {method}"),
        ]
        if ctype:
            headers.append(("Content-Type", ctype))
        request = Request(method, "sip:ivrcast@192.0.2.9:5060", tuple(headers), body)
        actions = self.call.on_request(request, PEER)
        self.actions += actions
        return actions

    def feed(self, actions: list[Action]) -> list[Action]:
        self.actions += actions
        return actions

    def advance_to_deadline(self) -> list[Action]:
        deadline = self.call.deadline()
        assert deadline is not None
        self.clock.advance(deadline - self.clock.monotonic())
        actions = self.call.on_timer()
        self.actions += actions
        return actions

    def advance(self, seconds: float) -> list[Action]:
        end = self.clock.monotonic() + seconds
        out: list[Action] = []
        while (d := self.call.deadline()) is not None and d <= end:
            out += self.advance_to_deadline()
        self.clock.advance(end - self.clock.monotonic())
        return out

    @property
    def outcome(self) -> CallOutcome:
        finished = [a.outcome for a in self.actions if isinstance(a, Finish)]
        assert len(finished) == 1, finished
        return finished[0]


def sent(actions: list[Action], method_or_status: str | int) -> list[Request | Response]:
    out: list[Request | Response] = []
    for action in actions:
        if isinstance(action, Send):
            m = action.message
            if (isinstance(m, Request) and m.method == method_or_status) or (
                isinstance(m, Response) and m.status == method_or_status
            ):
                out.append(m)
    return out


def test_answer_starts_media_only_on_2xx_and_acks() -> None:
    h = Harness()
    early = h.respond(183, body=ANSWER)  # early media with SDP is not an answer
    assert not any(isinstance(a, StartMedia) for a in early)
    actions = h.respond(200, body=ANSWER)
    (ack,) = sent(actions, "ACK")
    assert isinstance(ack, Request)
    assert ack.top_via.branch != h.invite.top_via.branch  # 2xx ACK is its own transaction
    assert ack.uri == "sip:far@192.0.2.1:5060"
    (start,) = [a for a in actions if isinstance(a, StartMedia)]
    assert (start.choice.codec, start.choice.port) == ("PCMA", 30000)
    assert h.call.state is CallState.ANSWERED


def test_2xx_retransmission_is_acked_again() -> None:
    h = Harness()
    first = sent(h.answer(), "ACK")
    again = sent(h.respond(200, body=ANSWER), "ACK")
    assert again == first


def test_ring_timeout_cancels_then_487_is_no_answer() -> None:
    h = Harness(wait_time=5.0)
    h.respond(180)
    actions = h.advance(5.0)
    (cancel,) = sent(actions, "CANCEL")
    assert cancel.top_via.branch == h.invite.top_via.branch
    assert cancel.cseq.seq == h.invite.cseq.seq
    h.respond(200, to=cancel)  # type: ignore[arg-type]
    h.respond(487)
    outcome = h.outcome
    assert (outcome.status, outcome.sip_code, outcome.hangup_cause) == ("no_answer", 487, 10016)
    assert outcome.hangup_by == "us"


def test_cancel_waits_for_a_provisional() -> None:
    h = Harness(wait_time=1.0)
    assert sent(h.advance(1.0), "CANCEL") == []
    assert sent(h.respond(100), "CANCEL") != []


def test_200_racing_cancel_is_acked_then_byed() -> None:
    h = Harness(wait_time=1.0)
    h.respond(180)
    h.advance(1.0)
    actions = h.respond(200, body=ANSWER)
    assert sent(actions, "ACK")
    assert sent(actions, "BYE")
    assert not any(isinstance(a, StartMedia) for a in actions)
    assert h.outcome.answered_at is not None
    assert h.outcome.hangup_by == "us"


def test_no_common_codec_acks_byes_and_fails() -> None:
    h = Harness()
    h.respond(180)
    g729 = ANSWER.replace(b"RTP/AVP 8 101", b"RTP/AVP 18")
    actions = h.respond(200, body=g729)
    assert sent(actions, "ACK")
    assert sent(actions, "BYE")
    assert h.outcome.status == "failed"
    assert "no common codec" in h.outcome.sip_reason


@pytest.mark.parametrize(
    ("status", "reason_header", "expected", "cause", "trunk_failed"),
    [
        (486, None, "busy", 10006, False),
        (480, None, "no_answer", 10005, False),
        (404, None, "failed", 10014, False),
        (503, None, "failed", 10004, True),
        (603, None, "rejected", 10003, False),
        (503, "Q.850;cause=17", "busy", 10006, False),
        (480, 'Q.850;cause=18;text="No user responding"', "no_answer", 10016, False),
        (302, None, "failed", 10020, False),
    ],
)
def test_failure_table(
    status: int, reason_header: str | None, expected: str, cause: int, trunk_failed: bool
) -> None:
    h = Harness()
    extra = (("Reason", reason_header),) if reason_header else ()
    actions = h.respond(status, extra=extra)
    assert sent(actions, "ACK")  # the INVITE transaction ACKs the failure
    outcome = h.outcome
    assert (outcome.status, outcome.hangup_cause, outcome.trunk_failed) == (
        expected,
        cause,
        trunk_failed,
    )
    assert outcome.hangup_direction == 10041


def test_503_after_ringing_is_not_a_trunk_failure() -> None:
    h = Harness()
    h.respond(180)
    h.respond(503)
    assert h.outcome.trunk_failed is False


def test_timer_b_is_a_failed_trunk() -> None:
    h = Harness()
    h.advance(32.0)
    outcome = h.outcome
    assert (outcome.status, outcome.sip_code, outcome.trunk_failed) == ("failed", 408, True)
    assert outcome.hangup_cause == 10015


def test_proxy_auth_retries_once_with_credentials() -> None:
    h = Harness(username="alice", password="pw")
    challenge = ("Proxy-Authenticate", 'Digest realm="r", nonce="n1", qop="auth"')
    actions = h.respond(407, extra=(challenge,))
    invites = sent(actions, "INVITE")
    assert len(invites) == 1
    retry = invites[0]
    assert retry.cseq.seq == 2
    assert retry.from_.tag == "ours"
    assert (retry.header("Proxy-Authorization") or "").startswith('Digest username="alice"')
    h.respond(407, extra=(challenge,))  # refused again: give up
    assert h.outcome.sip_code == 407
    assert h.outcome.status == "failed"


def test_401_without_credentials_fails() -> None:
    h = Harness()
    h.respond(401, extra=(("WWW-Authenticate", 'Digest realm="r", nonce="n"'),))
    assert h.outcome.sip_code == 401


def test_far_end_bye_completes_and_is_answered_again_when_repeated() -> None:
    h = Harness()
    h.answer()
    first = h.far_request("BYE", 5)
    assert sent(first, 200)
    outcome = h.outcome
    assert (outcome.hangup_by, outcome.hangup_direction) == ("callee", 10041)
    assert sent(h.far_request("BYE", 5), 200)  # retransmission: same answer, no new outcome


def test_audio_done_sends_bye_or_waits_for_keys() -> None:
    h = Harness()
    h.answer()
    assert sent(h.feed(h.call.on_audio_done()), "BYE")
    assert h.outcome.sip_reason == "audio played"

    k = Harness(collect_keys=True, key_wait=5.0)
    k.answer()
    assert k.feed(k.call.on_audio_done()) == []
    actions = k.feed(k.call.on_key("7"))
    assert [a.event.key for a in actions if isinstance(a, Emit)] == ["7", None]
    assert sent(actions, "BYE")
    assert k.outcome.keys == "7"


def test_key_wait_expiry_and_key_during_audio() -> None:
    h = Harness(collect_keys=True, key_wait=5.0)
    h.answer()
    h.feed(h.call.on_audio_done())
    assert sent(h.advance(5.0), "BYE")
    assert h.outcome.keys == ""

    k = Harness(collect_keys=True)
    k.answer()
    k.feed(k.call.on_key("3"))  # during the voice: recorded, the voice goes on
    assert k.call.state is CallState.ANSWERED
    assert sent(k.feed(k.call.on_audio_done()), "BYE")


def test_conn_time_and_no_rtp() -> None:
    h = Harness(conn_time=10.0)
    h.answer()
    assert sent(h.advance(10.0), "BYE")
    assert h.outcome.sip_reason == "conn_time reached"
    r = Harness()
    r.answer()
    r.feed(r.call.on_rtp_timeout())
    assert r.outcome.hangup_cause == 10011


def test_info_dtmf_and_other_in_dialog_requests() -> None:
    h = Harness()
    h.answer()
    actions = h.far_request(
        "INFO", 2, body=b"Signal=#\r\nDuration=100\r\n", ctype="application/dtmf-relay"
    )
    assert sent(actions, 200)
    assert [a.event.key for a in actions if isinstance(a, Emit)] == ["#"]
    h.far_request("INFO", 3, body=b"11", ctype="application/dtmf")
    assert sent(h.far_request("OPTIONS", 4), 200)
    assert sent(h.far_request("MESSAGE", 5, body=b"x", ctype="text/plain"), 501)
    assert sent(h.far_request("INFO", 1), 500)  # CSeq went backwards (§12.2.2)
    h.feed(h.call.on_audio_done())
    assert h.outcome.keys == "##"


def test_reinvite_is_answered_with_our_sdp_and_moves_media() -> None:
    h = Harness()
    h.answer()
    moved = build_offer("192.0.2.50", 31000, session_id=1, version=2)
    actions = h.far_request("INVITE", 7, body=moved, ctype="application/sdp")
    (ok,) = sent(actions, 200)
    assert b"m=audio 40000 RTP/AVP 8 101" in ok.body
    (update,) = [a for a in actions if isinstance(a, UpdateMedia)]
    assert (update.choice.address, update.choice.port) == ("192.0.2.50", 31000)
    assert sent(h.advance(0.5), 200)  # retransmitted until the ACK
    ack = Request(
        "ACK", "sip:ivrcast@192.0.2.9:5060",
        (("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKack"), ("From", "<sip:100@x>;tag=theirs"),
         ("To", "<sip:200@x>;tag=ours"), ("Call-ID", "c1@test"), ("CSeq", "7 ACK")),
    )  # fmt: skip
    h.call.on_request(ack, PEER)
    assert sent(h.advance(4.0), 200) == []


def reinvite_offer(direction: str, *, version: int, formats: str = "8 0") -> bytes:
    lines = [
        "v=0", f"o=far 1 {version} IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
        f"m=audio 30000 RTP/AVP {formats}", f"a={direction}",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode()


def ack_for(h: Harness, cseq: int) -> None:
    ack = Request(
        "ACK", "sip:ivrcast@192.0.2.9:5060",
        (("Via", f"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKack{cseq}"),
         ("From", "<sip:100@x>;tag=theirs"), ("To", "<sip:200@x>;tag=ours"),
         ("Call-ID", "c1@test"), ("CSeq", f"{cseq} ACK")),
    )  # fmt: skip
    h.call.on_request(ack, PEER)


def test_reinvite_is_answered_not_offered_to() -> None:
    """RFC 3264 §6.1: the answer takes the offer's payload types and declares no
    telephone-event the offer did not have."""
    h = Harness()
    h.answer()
    actions = h.far_request(
        "INVITE", 7, body=reinvite_offer("sendrecv", version=2), ctype="application/sdp"
    )
    (ok,) = sent(actions, 200)
    assert b"m=audio 40000 RTP/AVP 8\r\n" in ok.body
    assert b"telephone-event" not in ok.body
    assert b"a=sendrecv" in ok.body


def test_hold_and_resume_follow_the_offers_direction() -> None:
    h = Harness()
    h.answer()
    hold = h.far_request(
        "INVITE", 7, body=reinvite_offer("sendonly", version=2), ctype="application/sdp"
    )
    (ok,) = sent(hold, 200)
    assert b"a=recvonly" in ok.body  # §8.4: mirrored
    (update,) = [a for a in hold if isinstance(a, UpdateMedia)]
    assert not update.choice.far_end_receives
    assert not update.choice.far_end_sends
    ack_for(h, 7)
    resume = h.far_request(
        "INVITE", 8, body=reinvite_offer("sendrecv", version=3), ctype="application/sdp"
    )
    (ok,) = sent(resume, 200)
    assert b"a=sendrecv" in ok.body
    (update,) = [a for a in resume if isinstance(a, UpdateMedia)]
    assert update.choice.far_end_receives
    assert update.choice.far_end_sends
    ack_for(h, 8)
    assert h.call.state is CallState.ANSWERED


def test_held_call_still_ends_at_conn_time() -> None:
    h = Harness(conn_time=5.0)
    h.answer()
    h.far_request("INVITE", 7, body=reinvite_offer("inactive", version=2), ctype="application/sdp")
    ack_for(h, 7)
    h.advance(5.0)
    assert sent(h.actions, "BYE")
    assert h.outcome.status == "completed"
    assert h.outcome.sip_reason == "conn_time reached"


def test_requests_outside_the_dialog_get_481() -> None:
    h = Harness()
    assert sent(h.far_request("BYE", 1), 481)


def test_stop_while_calling_and_while_ringing() -> None:
    h = Harness()
    h.feed(h.call.stop())
    assert (h.outcome.status, h.outcome.hangup_cause) == ("failed", 10002)
    r = Harness()
    r.respond(180)
    assert sent(r.feed(r.call.stop()), "CANCEL")
    r.respond(487)
    assert r.outcome.status == "failed"


def test_times_are_stamped_from_the_clock() -> None:
    h = Harness()
    h.clock.advance(1)
    h.respond(180)
    h.clock.advance(2)
    h.respond(200, body=ANSWER)
    h.clock.advance(3)
    h.far_request("BYE", 2)
    o = h.outcome
    assert o.invited_at is not None
    assert o.ringing_at is not None
    assert o.answered_at is not None
    assert o.ended_at is not None
    assert (o.ringing_at - o.invited_at).total_seconds() == 1
    assert (o.answered_at - o.ringing_at).total_seconds() == 2
    assert (o.ended_at - o.answered_at).total_seconds() == 3
