"""SDP parsing and RFC 3264 negotiation, on answers captured from SIPp and baresip."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrcast.sip.errors import SdpError
from ivrcast.sip.sdp import SessionDescription, build_offer, negotiate

DATA = Path(__file__).parents[2] / "data" / "sdp"


def sdp(*lines: str, connection: bool = True) -> bytes:
    head = ["v=0", "o=- 1 1 IN IP4 10.0.0.1", "s=-"]
    head += ["c=IN IP4 10.0.0.1"] if connection else []
    return "\r\n".join([*head, "t=0 0", *lines, ""]).encode()


def load(name: str) -> SessionDescription:
    return SessionDescription.parse((DATA / name).read_bytes())


def test_baresip_answer() -> None:
    choice = negotiate(load("baresip-answer.sdp"))
    assert (choice.codec, choice.payload_type, choice.address) == ("PCMU", 0, "127.0.0.1")
    assert choice.port > 0


def test_sipp_answer_pcma_with_telephone_event() -> None:
    choice = negotiate(load("sipp-answer.sdp"))
    assert (choice.codec, choice.payload_type, choice.dtmf_payload_type) == ("PCMA", 8, 101)


def test_our_offer_parses_back() -> None:
    offer = load("ivrcast-offer.sdp")
    audio = offer.audio()
    assert audio is not None
    assert audio.formats == (0, 8, 101)
    assert [m.encoding for m in audio.rtpmaps] == ["PCMU", "PCMA", "TELEPHONE-EVENT"]
    built = SessionDescription.parse(build_offer("192.0.2.1", 4000, session_id=7))
    assert built.connection == "192.0.2.1"
    assert built.media[0].port == 4000


def test_first_common_codec_in_answer_order_wins() -> None:
    choice = negotiate(SessionDescription.parse(sdp("m=audio 5000 RTP/AVP 18 8 0")))
    assert choice.codec == "PCMA"
    assert choice.dtmf_payload_type is None


def test_media_level_connection_overrides_session() -> None:
    body = sdp("m=audio 5000 RTP/AVP 0", "c=IN IP4 10.0.0.2")
    assert negotiate(SessionDescription.parse(body)).address == "10.0.0.2"


@pytest.mark.parametrize(
    "body",
    [
        sdp("m=audio 5000 RTP/AVP 18", "a=rtpmap:18 G729/8000"),
        sdp("m=audio 0 RTP/AVP 0"),
        sdp("m=audio 5000 RTP/AVP 0", connection=False),
        sdp("m=audio 5000 RTP/SAVP 0"),
        b"",
        b"not sdp",
    ],
    ids=["g729-only", "rejected-stream", "no-connection", "srtp", "empty", "garbage"],
)
def test_unusable_answers(body: bytes) -> None:
    with pytest.raises(SdpError) as info:
        negotiate(SessionDescription.parse(body))
    assert info.value.code == 488


def test_truncations_never_crash() -> None:
    data = (DATA / "baresip-answer.sdp").read_bytes()
    for cut in range(len(data)):
        try:
            negotiate(SessionDescription.parse(data[:cut]))
        except SdpError:
            continue
