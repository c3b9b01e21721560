"""SIP message parsing: captures from SIPp and baresip, RFC 4475-style torture cases,
round trips, and every truncation of a real message."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ivrcast.sip.errors import SipParseError
from ivrcast.sip.headers import CSeq, NameAddr, Via, q850_cause, split_values
from ivrcast.sip.message import Request, Response, make_response, parse_message, response_address
from ivrcast.sip.uri import SipUri

DATA = Path(__file__).parents[2] / "data" / "sip"
CAPTURES = sorted(p.name for p in DATA.glob("*.sip") if not p.name.startswith("rfc4475"))
VALID = sorted(p.name for p in DATA.glob("rfc4475-valid-*.sip"))
INVALID = sorted(p.name for p in DATA.glob("rfc4475-invalid-*.sip"))


def without_length(message: Request | Response) -> tuple[object, ...]:
    """A message minus Content-Length, which serialising always adds."""
    headers = tuple(h for h in message.headers if h[0] != "Content-Length")
    start = (message.method, message.uri) if isinstance(message, Request) else message.status
    return start, headers, message.body


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.mark.parametrize("name", CAPTURES + VALID)
def test_parse_and_round_trip(name: str) -> None:
    message = parse_message(load(name))
    again = parse_message(bytes(message))
    assert without_length(again) == without_length(message)
    assert parse_message(bytes(again)) == again
    assert message.call_id
    assert message.cseq.seq >= 0


@pytest.mark.parametrize("name", INVALID)
def test_torture_invalid_messages_are_refused(name: str) -> None:
    with pytest.raises(SipParseError):
        parse_message(load(name))


@pytest.mark.parametrize("name", CAPTURES)
def test_every_truncation_is_a_parse_error_or_a_message(name: str) -> None:
    data = load(name)
    for cut in range(len(data)):
        try:
            parse_message(data[:cut])
        except SipParseError:
            continue


def test_baresip_200_ok() -> None:
    response = Response.parse(load("baresip-200-ok.sip"))
    assert (response.status, response.reason) == (200, "Answering")
    assert response.to.tag
    assert response.content_type == "application/sdp"
    assert response.body.startswith(b"v=0")
    assert NameAddr.parse(response.header_values("Contact")[0]).uri.port == 5096
    via = response.top_via
    assert via.param("received") == "127.0.0.1"
    assert via.param("rport") not in (None, "")


def test_sipp_407_challenge() -> None:
    response = Response.parse(load("sipp-407.sip"))
    assert response.status == 407
    assert response.header(
        "Proxy-Authenticate",
    ).startswith("Digest realm=")  # type: ignore[union-attr]


def test_bye_with_reason() -> None:
    request = Request.parse(load("sipp-bye-reason.sip"))
    assert request.method == "BYE"
    assert q850_cause(request.header_values("Reason")) == 16


def test_lws_folding_and_odd_spacing() -> None:
    request = Request.parse(load("rfc4475-valid-lws-folding.sip"))
    assert request.cseq == CSeq(9, "INVITE")
    assert request.to.tag == "1918181833n"
    assert request.from_.tag == "98asjd8"
    vias = request.vias
    assert [v.host for v in vias] == ["192.0.2.2", "spindle.example.com", "192.168.255.111"]
    assert vias[1].transport == "TCP"
    assert vias[2].branch == "z9hG4bK30239"
    assert request.header("Subject") == ""
    assert request.header("NewFangledHeader") == "newfangled value continued newfangled value"
    contact = NameAddr.parse(request.header_values("Contact")[0])
    assert contact.uri.user == "jdrosen"
    assert ("q", "0.33") in contact.params


def test_compact_forms_are_expanded() -> None:
    request = Request.parse(load("rfc4475-valid-compact.sip"))
    assert [k for k, _ in request.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Content-Length",
    ]  # fmt: skip
    assert b"Call-ID: a84b4c76e66710\r\n" in bytes(request)


def test_extra_bytes_after_content_length_are_ignored() -> None:
    request = Request.parse(load("rfc4475-valid-body-longer-than-content-length.sip"))
    assert request.body == b"hello"


def test_ipv6_addresses() -> None:
    request = Request.parse(load("rfc4475-valid-ipv6.sip"))
    assert request.top_via.host == "2001:db8::9:1"
    assert request.request_uri.host == "2001:db8::10"
    assert str(request.request_uri) == "sip:[2001:db8::10]"


def test_crlf_before_start_line_is_ignored() -> None:
    data = b"\r\n\r\n" + load("sipp-options.sip")
    assert Request.parse(data).method == "OPTIONS"


def test_uri_parts() -> None:
    uri = SipUri.parse("sip:alice:pw@[2001:db8::1]:5070;transport=udp;lr?subject=x")
    assert (uri.user, uri.password, uri.host, uri.port) == ("alice", "pw", "2001:db8::1", 5070)
    assert uri.param("transport") == "udp"
    assert uri.has_param("lr")
    assert uri.headers == "subject=x"
    assert SipUri.parse(str(uri)) == uri
    with pytest.raises(SipParseError):
        SipUri.parse("http://example.com")
    with pytest.raises(SipParseError):
        SipUri.parse("sip:user@host:99999")


def test_split_values_respects_quotes_and_brackets() -> None:
    value = '"Doe, John" <sip:a@b;x=1,2>, <sip:c@d>;q=0.5'
    assert split_values(value) == ['"Doe, John" <sip:a@b;x=1,2>', "<sip:c@d>;q=0.5"]


def test_via_round_trip() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport")
    assert (via.host, via.port, via.branch, via.param("rport")) == (
        "10.0.0.1",
        5062,
        "z9hG4bKabc",
        "",
    )
    assert Via.parse(str(via)) == via


def with_top_via(request: Request, via: str) -> Request:
    """`request` with its top Via replaced by `via`."""
    headers = list(request.headers)
    top = next(i for i, (name, _) in enumerate(headers) if name == "Via")
    headers[top] = ("Via", via)
    return replace(request, headers=tuple(headers))


def test_response_to_a_request_fills_rport_and_received() -> None:
    """RFC 3581 §4: an empty `rport` is filled with the source port, `received` is added
    (always, when `rport` is present), and the response goes back to the source."""
    captured = Request.parse(load("sipp-info-dtmf-relay.sip"))
    request = with_top_via(captured, "SIP/2.0/UDP 127.0.0.1:48023;branch=z9hG4bK-856-1-4;rport")
    response = make_response(request, 200, "OK", source=("192.0.2.7", 40000))
    via = response.top_via
    assert via.param("received") == "192.0.2.7"
    assert via.param("rport") == "40000"
    assert response.cseq == request.cseq
    assert response_address(request, ("192.0.2.7", 40000)) == ("192.0.2.7", 40000)


def test_response_without_rport_goes_to_received_at_the_sent_by_port() -> None:
    """RFC 3261 §18.2.1/§18.2.2: without `rport`, `received` is added when the source IP
    differs from the sent-by host, and the response goes to that address at the sent-by
    port, not to the source port."""
    request = Request.parse(load("sipp-info-dtmf-relay.sip"))
    assert request.top_via.param("rport") is None
    response = make_response(request, 200, "OK", source=("192.0.2.7", 40000))
    assert response.top_via.param("received") == "192.0.2.7"
    assert response.top_via.param("rport") is None
    assert response_address(request, ("192.0.2.7", 40000)) == ("192.0.2.7", 48023)

    same_host = make_response(request, 200, "OK", source=("127.0.0.1", 40000))
    assert same_host.top_via.param("received") is None
    assert response_address(request, ("127.0.0.1", 40000)) == ("127.0.0.1", 48023)
