"""Digest authentication against published vectors (RFC 7616 §3.9.1, RFC 2617 §3.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrcast.sip.digest import Challenge, authorization, choose
from ivrcast.sip.errors import DigestError
from ivrcast.sip.message import Response

RFC7616 = {
    "realm": "http-auth@example.org",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example(algorithm: str, response: str) -> None:
    header = (
        f'Digest realm="{RFC7616["realm"]}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616["nonce"]}", opaque="{RFC7616["opaque"]}"'
    )
    challenge = Challenge.parse(header)
    value = authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=RFC7616["cnonce"],
    )
    assert f'response="{response}"' in value
    assert "qop=auth," in value
    assert "nc=00000001" in value
    assert f'opaque="{RFC7616["opaque"]}"' in value


def test_rfc2617_example() -> None:
    challenge = Challenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = authorization(
        challenge, method="GET", uri="/dir/index.html", username="Mufasa",
        password="Circle Of Life", cnonce="0a4f113b",
    )  # fmt: skip
    assert 'response="6629fae49393a05397450978507c4ef1"' in value


def test_sipp_challenge_and_no_qop() -> None:
    data = (Path(__file__).parents[2] / "data" / "sip" / "sipp-407.sip").read_bytes()
    value = Response.parse(data).header("Proxy-Authenticate")
    assert value is not None
    challenge = Challenge.parse(value)
    assert (challenge.realm, challenge.algorithm, challenge.qop) == ("sipp.test", "MD5", ("auth",))
    plain = Challenge(realm="r", nonce="n")
    header = authorization(
        plain, method="INVITE", uri="sip:a@b", username="u", password="p", cnonce="c"
    )
    assert "qop" not in header
    assert "cnonce" not in header


def test_choose_prefers_sha256() -> None:
    chosen = choose(
        [
            'Digest realm="r", nonce="1", algorithm=MD5',
            'Digest realm="r", nonce="2", algorithm=SHA-256',
        ]
    )
    assert chosen.algorithm == "SHA-256"


@pytest.mark.parametrize(
    "value",
    [
        'Basic realm="r"',
        'Digest realm="r"',
        'Digest realm="r", nonce="n", algorithm=SHA-512-256',
        'Digest realm="r", nonce="n", qop="auth-conf"',
        'Digest realm="r, nonce="n',
    ],
)
def test_unanswerable_challenges(value: str) -> None:
    with pytest.raises(DigestError):
        choose([value])
