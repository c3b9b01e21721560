from __future__ import annotations

import pytest

from ivrcast.errors import ConfigError
from ivrcast.numbers import (
    E164,
    InvalidNumberFormat,
    check_number_format,
    format_for_trunk,
    get_nation,
)


@pytest.mark.parametrize(
    ("code", "number", "number_format", "expected"),
    [
        ("id", "+6281234567890", "e164", "6281234567890"),
        ("id", "+6281234567890", "plus", "+6281234567890"),
        ("id", "+6281234567890", "national", "081234567890"),
        ("id", "+62218350123", "national", "0218350123"),
        ("in", "+918123456789", "national", "08123456789"),
        ("in", "+911800123456", "national", "1800123456"),  # toll free: no trunk prefix
        ("co", "+573211234567", "national", "3211234567"),  # mobiles: no trunk prefix
        ("mx", "+525512345678", "national", "5512345678"),  # Mexico dropped its prefixes
        ("tha", "+66812345678", "national", "0812345678"),
        ("vn", "+84912345678", "national", "0912345678"),
        ("ph", "+639051234567", "national", "09051234567"),
        ("id", "+6281234567890", "prefix:1234", "123481234567890"),
        ("id", "+6281234567890", "prefix:*99#", "*99#81234567890"),
        ("id", "+6281234567890", "prefix:", "81234567890"),
    ],
)
def test_format_for_trunk(code: str, number: str, number_format: str, expected: str) -> None:
    assert format_for_trunk(E164(number), get_nation(code), number_format) == expected


@pytest.mark.parametrize(
    "number_format", ["", "E164", "international", "prefix", "prefix:12a", "prefix:" + "1" * 17]
)
def test_unknown_formats_are_config_errors(number_format: str) -> None:
    with pytest.raises(InvalidNumberFormat) as raised:
        format_for_trunk(E164("+6281234567890"), get_nation("id"), number_format)
    assert isinstance(raised.value, ConfigError)
    assert repr(number_format) in str(raised.value)
    with pytest.raises(InvalidNumberFormat):
        check_number_format(number_format)


def test_number_of_another_nation_is_refused() -> None:
    with pytest.raises(ValueError, match=r"not a number of India \(\+91\)"):
        format_for_trunk(E164("+6281234567890"), get_nation("in"), "e164")
