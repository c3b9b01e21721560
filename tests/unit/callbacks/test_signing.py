"""`X-Ivrcast-Signature`: round trip, a vector computed with openssl, tampering, time."""

from __future__ import annotations

import pytest

from ivrcast.callbacks.signing import InvalidSignature, sign, verify

BODY = b'{"uuid":"a"}'
T = 1_700_000_000
# printf '1700000000.{"uuid":"a"}' | openssl dgst -sha256 -hmac s3cret
VECTOR = "76727f74bf7df71e1220a3129e314ff14e638a86af19ad15da38272d0732c444"


def test_the_header_matches_an_independent_hmac() -> None:
    assert sign(BODY, "s3cret", timestamp=T) == f"t={T},v1={VECTOR}"


def test_round_trip_returns_the_timestamp() -> None:
    header = sign(BODY, "s3cret", timestamp=T)
    assert verify(header, BODY, "s3cret", now=T + 10) == T


def test_non_ascii_secrets_and_bodies_are_bytes_exact() -> None:
    body = '{"chengshudu":"客户 ü"}'.encode()
    header = sign(body, "clé-秘密", timestamp=T)
    assert verify(header, body, "clé-秘密", now=T) == T
    with pytest.raises(InvalidSignature):
        verify(header, '{"chengshudu":"客户 u"}'.encode(), "clé-秘密", now=T)


@pytest.mark.parametrize(
    ("header", "body", "secret", "reason"),
    [
        (f"t={T},v1={VECTOR}", b'{"uuid":"b"}', "s3cret", "no v1 signature matches"),
        (f"t={T},v1={VECTOR}", BODY, "other", "no v1 signature matches"),
        (f"t={T + 1},v1={VECTOR}", BODY, "s3cret", "no v1 signature matches"),
        (f"t={T},v1={VECTOR[:-1]}0", BODY, "s3cret", "no v1 signature matches"),
        (f"v1={VECTOR}", BODY, "s3cret", "no timestamp"),
        (f"t={T}", BODY, "s3cret", "no v1 signature"),
        (f"t=soon,v1={VECTOR}", BODY, "s3cret", "not a number"),
        ("", BODY, "s3cret", "no timestamp"),
    ],
)
def test_tampered_or_malformed_headers_are_refused(
    header: str, body: bytes, secret: str, reason: str
) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify(header, body, secret, now=T)


@pytest.mark.parametrize("offset", [-301, 301, 10_000])
def test_a_timestamp_beyond_the_tolerance_is_refused(offset: int) -> None:
    with pytest.raises(InvalidSignature, match="beyond 300 s"):
        verify(sign(BODY, "s3cret", timestamp=T), BODY, "s3cret", now=T + offset)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_a_timestamp_within_the_tolerance_is_accepted(offset: int) -> None:
    assert verify(sign(BODY, "s3cret", timestamp=T), BODY, "s3cret", now=T + offset) == T


def test_the_tolerance_is_the_receivers_choice() -> None:
    header = sign(BODY, "s3cret", timestamp=T)
    assert verify(header, BODY, "s3cret", now=T + 3600, tolerance=7200) == T


def test_any_matching_v1_is_enough_and_unknown_keys_are_ignored() -> None:
    header = f"t={T}, v0=abc, v1={'0' * 64}, v1={VECTOR}, v2=future"
    assert verify(header, BODY, "s3cret", now=T) == T
