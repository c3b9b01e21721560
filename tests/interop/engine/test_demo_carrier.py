"""The engine against the demo carrier directly (both on the same stack, same loop):
answers, keys and the callee's BYE by the last digit, RTP both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from engine_helpers import call_request, silence

from ivrcast.demo import DemoCarrier
from ivrcast.demo.uas import Pacing
from ivrcast.sip import CallEvent, Engine, Trunk


@pytest.fixture
async def demo() -> AsyncIterator[DemoCarrier]:
    carrier = DemoCarrier(pacing=Pacing(ring=0.2, key_after=0.3, hangup_after=0.5))
    await carrier.start()
    yield carrier
    await carrier.stop()


def trunk(carrier: DemoCarrier) -> Trunk:
    host, port = carrier.address
    return Trunk(name="demo", host=host, port=port)


async def test_key_press_reaches_the_engine_once(demo: DemoCarrier) -> None:
    engine = Engine(no_rtp_timeout=5.0)
    await engine.start()
    try:
        events: list[CallEvent] = []
        request = call_request(trunk(demo), silence(0.4), collect_keys=True, dest="62812004")
        outcome = await engine.originate(request, events.append)
    finally:
        await engine.stop()
    assert outcome.status == "completed"
    assert outcome.keys == "1"
    assert [e.key for e in events if e.kind == "key"] == ["1"]
    assert outcome.rtp_received > 10  # the demo's tone, on its own media clock


async def test_callee_bye_and_an_advertised_host_that_loopback_cannot_reach(
    demo: DemoCarrier,
) -> None:
    # The advertised address is for carriers; toward the demo on loopback the engine
    # offers the address the demo can reach, so RTP flows both ways.
    engine = Engine(no_rtp_timeout=5.0, advertised_host="203.0.113.7")
    await engine.start()
    try:
        request = call_request(trunk(demo), silence(5.0), dest="62812009")
        outcome = await engine.originate(request)
    finally:
        await engine.stop()
    assert outcome.status == "completed"
    assert outcome.hangup_by == "callee"
    assert outcome.rtp_received > 10
    assert demo.active_calls == 0
