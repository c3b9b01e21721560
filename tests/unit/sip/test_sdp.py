"""SDP parsing and RFC 3264 negotiation, on answers captured from SIPp and baresip."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrcast.sip.errors import SdpError
from ivrcast.sip.offer_answer import LocalDescription
from ivrcast.sip.sdp import SessionDescription, build_answer, build_offer, negotiate

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


# -- answering an offer (RFC 3264 §6.1, §8.4) ----------------------------------------


def answer_to(offer: bytes, codecs: tuple[str, ...] = ("PCMU", "PCMA")) -> SessionDescription:
    parsed = SessionDescription.parse(offer)
    choice = negotiate(parsed, codecs)
    return SessionDescription.parse(
        build_answer(parsed, choice, "192.0.2.9", 40000, session_id=7, version=3)
    )


def test_answer_keeps_the_offers_payload_numbers_and_its_telephone_event() -> None:
    offer = sdp(
        "m=audio 5004 RTP/AVP 8 0 96",
        "a=rtpmap:96 telephone-event/8000",
        "a=fmtp:96 0-11",
    )
    answer = answer_to(offer)
    audio = answer.audio()
    assert audio is not None
    assert (audio.port, audio.formats, audio.direction) == (40000, (8, 96), "sendrecv")
    assert audio.fmtp_of(96) == "0-11"  # no more events than were offered
    assert answer.origin == "ivrcast 7 3 IN IP4 192.0.2.9"


def test_answer_declares_no_telephone_event_that_was_not_offered() -> None:
    audio = answer_to(sdp("m=audio 5004 RTP/AVP 0")).audio()
    assert audio is not None
    assert audio.formats == (0,)
    assert audio.encoding_of(101) is None


@pytest.mark.parametrize(
    ("offered", "answered", "receives", "sends"),
    [
        ("sendrecv", "sendrecv", True, True),
        ("sendonly", "recvonly", False, False),  # on hold: we stop sending
        ("recvonly", "sendonly", True, False),
        ("inactive", "inactive", False, False),
    ],
)
def test_answer_mirrors_the_direction(
    offered: str, answered: str, receives: bool, sends: bool
) -> None:
    offer = sdp("m=audio 5004 RTP/AVP 0", f"a={offered}")
    choice = negotiate(SessionDescription.parse(offer))
    assert (choice.far_end_receives, choice.far_end_sends) == (receives, sends)
    audio = answer_to(offer).audio()
    assert audio is not None
    assert audio.direction == answered


def test_session_level_direction_is_mirrored_too() -> None:
    offer = sdp("a=sendonly", "m=audio 5004 RTP/AVP 0")
    audio = answer_to(offer).audio()
    assert audio is not None
    assert audio.direction == "recvonly"


def test_hold_by_all_zeros_address_stops_our_sending() -> None:
    head = ["v=0", "o=- 1 2 IN IP4 10.0.0.1", "s=-", "c=IN IP4 0.0.0.0", "t=0 0"]
    offer = "\r\n".join([*head, "m=audio 5004 RTP/AVP 0", ""]).encode()
    choice = negotiate(SessionDescription.parse(offer))
    assert not choice.far_end_receives
    assert not choice.far_end_sends


def test_answer_rejects_other_streams_in_place() -> None:
    offer = sdp(
        "m=video 5006 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "m=audio 5004 RTP/AVP 0 8",
        "m=application 5008 UDP/BFCP *",
    )
    answer = answer_to(offer, ("PCMA",))
    assert [(m.kind, m.port) for m in answer.media] == [
        ("video", 0),
        ("audio", 40000),
        ("application", 0),
    ]
    assert answer.media[1].formats == (8,)
    assert answer.media[2].format_tokens == ("*",)


def test_offer_without_a_codec_of_ours_is_refused() -> None:
    with pytest.raises(SdpError, match="no common codec"):
        answer_to(sdp("m=audio 5004 RTP/AVP 0"), ("PCMA",))


def test_our_version_moves_only_when_our_description_changes() -> None:
    """RFC 3264 §8: the same description keeps its o= version, a changed one increments."""
    ours = LocalDescription("192.0.2.9", 40000, session_id=5)

    def version(body: bytes) -> str:
        return SessionDescription.parse(body).origin.split()[2]

    assert version(ours.offer()) == version(ours.offer()) == "1"
    offer = SessionDescription.parse(sdp("m=audio 5004 RTP/AVP 0"))
    choice = negotiate(offer)
    assert version(ours.answer(offer, choice)) == "2"  # not the offer we made
    assert version(ours.answer(offer, choice)) == "2"  # a refresh, unchanged
    held = SessionDescription.parse(sdp("m=audio 5004 RTP/AVP 0", "a=sendonly"))
    assert version(ours.answer(held, negotiate(held))) == "3"
