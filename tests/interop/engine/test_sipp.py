"""The engine against SIPp UAS scenarios written for ivrcast (the `.xml` files here).

Each test starts SIPp for exactly one call (`-m 1`), places the call, and checks both
sides: the `CallOutcome` and SIPp's exit status (0 only if every message of the
scenario arrived as scripted). Failures carry SIPp's message trace.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from engine_helpers import (
    SippRun,
    call_request,
    silence,
)

from ivrcast.sip import CallEvent, Engine, Trunk
from waiting import wait_for

Sipp = Callable[..., Awaitable[SippRun]]


async def finish_ok(run: SippRun) -> None:
    code = await run.finish()
    assert code == 0, run.logs()


@pytest.fixture
def rtp_sink() -> Iterator[Callable[[], socket.socket]]:
    socks: list[socket.socket] = []

    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
        return s

    yield make
    for s in socks:
        s.close()


def drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(2048)
        except BlockingIOError:
            return count
        count += 1


async def test_answer_and_rfc4733_key(engine: Engine, sipp: Sipp) -> None:
    run = await sipp("uas_dtmf_rfc4733.xml")
    events: list[CallEvent] = []
    request = call_request(run.trunk, silence(1.0), collect_keys=True, key_wait=5)
    outcome = await engine.originate(request, events.append)
    await finish_ok(run)
    assert outcome.status == "completed", run.logs()
    assert outcome.keys == "1"
    assert [e.kind for e in events] == ["ringing", "answered", "key", "hangup"]
    assert outcome.codec == "PCMA"
    assert outcome.hangup_by == "us"
    assert (outcome.hangup_cause, outcome.hangup_direction) == (10001, 10040)
    assert outcome.rtp_sent == 50  # 1 s of audio; a key during the voice skips key_wait
    assert outcome.rtp_received > 0
    times = [outcome.invited_at, outcome.ringing_at, outcome.answered_at, outcome.ended_at]
    assert None not in times
    assert times == sorted(times)  # type: ignore[type-var]


async def test_callee_hangs_up_mid_audio(engine: Engine, sipp: Sipp) -> None:
    run = await sipp("uas_callee_bye.xml")
    outcome = await engine.originate(call_request(run.trunk, silence(5.0)))
    await finish_ok(run)
    assert outcome.status == "completed"
    assert outcome.hangup_by == "callee"
    assert outcome.hangup_direction == 10041
    assert outcome.q850_cause == 16
    assert 0 < outcome.rtp_sent < 250


@pytest.mark.parametrize(
    ("status", "reason", "expected", "cause", "trunk_failed"),
    [
        ("486", "Busy Here", "busy", 10006, False),
        ("404", "Not Found", "failed", 10014, False),
        ("503", "Service Unavailable", "failed", 10004, True),
        ("603", "Decline", "rejected", 10003, False),
    ],
)
async def test_final_failure_responses(
    engine: Engine,
    sipp: Sipp,
    status: str,
    reason: str,
    expected: str,
    cause: int,
    trunk_failed: bool,
) -> None:
    run = await sipp("uas_reject.xml", substitute={"@STATUS_LINE@": f"{status} {reason}"})
    outcome = await engine.originate(call_request(run.trunk, silence(1.0)))
    await finish_ok(run)  # the scenario ends with our ACK, so this proves it came
    assert outcome.status == expected, run.logs()
    assert outcome.sip_code == int(status)
    assert outcome.sip_reason == reason
    assert outcome.hangup_cause == cause
    assert outcome.trunk_failed is trunk_failed
    assert outcome.answered_at is None
    assert outcome.rtp_sent == 0


async def test_ring_forever_is_cancelled_at_wait_time(engine: Engine, sipp: Sipp) -> None:
    run = await sipp("uas_ring_forever.xml")
    outcome = await engine.originate(call_request(run.trunk, silence(1.0), wait_time=0.5))
    await finish_ok(run)
    assert outcome.status == "no_answer", run.logs()
    assert outcome.sip_code == 487
    assert (outcome.hangup_cause, outcome.hangup_direction) == (10016, 10040)
    assert outcome.ringing_at is not None
    assert outcome.answered_at is None


async def test_proxy_auth_challenge_then_answer(engine: Engine, sipp: Sipp) -> None:
    run = await sipp("uas_proxy_auth.xml")
    trunk = Trunk(name="sipp", host="127.0.0.1", port=run.port, username="alice", password="pw")
    outcome = await engine.originate(call_request(trunk, silence(0.4)))
    await finish_ok(run)  # the ereg on Proxy-Authorization is check_it="true"
    assert outcome.status == "completed", run.logs()
    assert run.messages("INVITE") == 2


async def test_www_auth_digest_is_verified(engine: Engine, sipp: Sipp) -> None:
    run = await sipp("uas_www_auth.xml")
    trunk = Trunk(name="sipp", host="127.0.0.1", port=run.port, username="alice", password="s3cret")
    outcome = await engine.originate(call_request(trunk, silence(0.4)))
    await finish_ok(run)
    # SIPp's <verifyauth> answers 403 to a wrong digest; only a right one gets 200.
    assert outcome.status == "completed", run.logs()


async def test_www_auth_wrong_password_is_rejected(engine: Engine, sipp: Sipp) -> None:
    run = await sipp("uas_www_auth.xml")
    trunk = Trunk(name="sipp", host="127.0.0.1", port=run.port, username="alice", password="bad")
    outcome = await engine.originate(call_request(trunk, silence(0.4)))
    await finish_ok(run)
    assert (outcome.status, outcome.sip_code) == ("rejected", 403), run.logs()


async def test_early_media_is_not_answer(
    engine: Engine, sipp: Sipp, rtp_sink: Callable[[], socket.socket]
) -> None:
    early, answer = rtp_sink(), rtp_sink()
    run = await sipp(
        "uas_early_media.xml",
        keys={
            "early_port": str(early.getsockname()[1]),
            "answer_port": str(answer.getsockname()[1]),
        },
    )
    outcome = await engine.originate(call_request(run.trunk, silence(0.4)))
    await finish_ok(run)
    assert outcome.status == "completed", run.logs()
    assert drain(early) == 0  # nothing went to the 183's media address
    assert drain(answer) == outcome.rtp_sent == 20


async def test_reinvite_moves_media(
    engine: Engine, sipp: Sipp, rtp_sink: Callable[[], socket.socket]
) -> None:
    moved = rtp_sink()
    run = await sipp("uas_reinvite.xml", keys={"new_port": str(moved.getsockname()[1])})
    outcome = await engine.originate(call_request(run.trunk, silence(1.5)))
    await finish_ok(run)  # our 200 carried SDP (checked by ereg) and SIPp's ACK was taken
    assert outcome.status == "completed", run.logs()
    assert 0 < drain(moved) < outcome.rtp_sent


@pytest.fixture
async def watching_engine() -> AsyncIterator[Engine]:
    """An engine whose no-RTP timer is on (half a second): SIPp echoes our RTP with
    `-rtp_echo`, so the far end is silent only while the call is held."""
    eng = Engine(no_rtp_timeout=0.5)
    await eng.start()
    yield eng
    await eng.stop()


async def test_hold_stops_our_rtp_and_the_no_rtp_timer_until_resumed(
    watching_engine: Engine, sipp: Sipp, rtp_sink: Callable[[], socket.socket]
) -> None:
    held = rtp_sink()
    run = await sipp(
        "uas_hold_resume.xml", "-rtp_echo", keys={"hold_port": str(held.getsockname()[1])}
    )
    outcome = await watching_engine.originate(call_request(run.trunk, silence(1.0)))
    await finish_ok(run)  # our answers mirrored sendonly and sendrecv (checked by ereg)
    assert outcome.status == "completed", run.logs()
    # The 1.5 s hold outlasted the no-RTP timeout, yet the voice played to its end.
    assert outcome.sip_reason == "audio played", run.logs()
    assert drain(held) == 0  # nothing was sent while held
    assert outcome.rtp_sent == 50  # the whole voice, resumed where it stopped
    assert outcome.rtp_received > 0


async def test_held_call_ends_at_conn_time(
    watching_engine: Engine, sipp: Sipp, rtp_sink: Callable[[], socket.socket]
) -> None:
    held = rtp_sink()
    run = await sipp(
        "uas_hold_until_bye.xml", "-rtp_echo", keys={"hold_port": str(held.getsockname()[1])}
    )
    request = call_request(run.trunk, silence(5.0), conn_time=1.5)
    outcome = await watching_engine.originate(request)
    await finish_ok(run)
    assert outcome.status == "completed", run.logs()
    assert outcome.sip_reason == "conn_time reached", run.logs()
    assert drain(held) == 0


async def test_no_response_ends_with_timer_b(fast_engine: Engine, sipp: Sipp) -> None:
    run = await sipp("uas_silent.xml")
    outcome = await fast_engine.originate(call_request(run.trunk, silence(1.0)))
    assert outcome.status == "failed"
    assert outcome.sip_code == 408
    assert outcome.trunk_failed is True
    assert outcome.hangup_cause == 10015
    await run.finish()
    # Timer A: the INVITE went at 0, 1, 3, 7, 15, 31 and 63 T1 before Timer B (64 T1).
    assert run.messages("INVITE") == 7, run.logs()


async def test_retransmitted_200_is_acked_again(engine: Engine, sipp: Sipp) -> None:
    run = await sipp("uas_200_retransmit.xml")
    outcome = await engine.originate(call_request(run.trunk, silence(1.0)))
    await finish_ok(run)
    assert outcome.status == "completed", run.logs()
    assert run.messages("ACK") == 2


async def test_info_dtmf_options_and_unknown_methods(engine: Engine, sipp: Sipp) -> None:
    run = await sipp("uas_info_dtmf.xml")
    request = call_request(run.trunk, silence(1.0), collect_keys=True)
    outcome = await engine.originate(request)
    await finish_ok(run)  # 200 for INFO and OPTIONS, 501 for MESSAGE
    assert outcome.status == "completed", run.logs()
    assert outcome.keys == "59"


async def test_no_rtp_from_far_end_ends_the_call(sipp: Sipp) -> None:
    engine = Engine(no_rtp_timeout=0.3)
    await engine.start()
    try:
        run = await sipp("uas_answer_wait_bye.xml")
        outcome = await engine.originate(call_request(run.trunk, silence(10.0)))
        await finish_ok(run)
    finally:
        await engine.stop()
    assert outcome.status == "completed"
    assert outcome.codec == "PCMU"
    assert (outcome.hangup_cause, outcome.hangup_direction) == (10011, 10040)
    assert outcome.rtp_sent < 100


async def test_stop_hangs_up_active_calls(sipp: Sipp) -> None:
    engine = Engine(no_rtp_timeout=None)
    await engine.start()
    run = await sipp("uas_answer_wait_bye.xml")
    events: list[CallEvent] = []
    task = asyncio.create_task(
        engine.originate(call_request(run.trunk, silence(30)), events.append)
    )
    await wait_for(lambda: any(e.kind == "answered" for e in events), "answer", limit=5)
    assert engine.active_calls == 1
    await engine.stop()
    outcome = await task
    await finish_ok(run)
    assert outcome.status == "completed"
    assert outcome.hangup_by == "us"
    assert engine.active_calls == 0
