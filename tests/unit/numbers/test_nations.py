from __future__ import annotations

from zoneinfo import ZoneInfo

import phonenumbers
import pytest

from ivrcast.errors import ValidationError
from ivrcast.numbers import NATIONS, Nation, UnknownNation, get_nation


def test_the_seven_nations_of_design_section_3() -> None:
    assert {code: (n.region, n.calling_code, n.timezone) for code, n in NATIONS.items()} == {
        "in": ("IN", 91, "Asia/Kolkata"),
        "id": ("ID", 62, "Asia/Jakarta"),
        "ph": ("PH", 63, "Asia/Manila"),
        "mx": ("MX", 52, "America/Mexico_City"),
        "co": ("CO", 57, "America/Bogota"),
        "tha": ("TH", 66, "Asia/Bangkok"),
        "vn": ("VN", 84, "Asia/Ho_Chi_Minh"),
    }


@pytest.mark.parametrize("nation", NATIONS.values(), ids=NATIONS.keys())
def test_nation_agrees_with_phonenumbers_and_the_tz_database(nation: Nation) -> None:
    assert phonenumbers.country_code_for_region(nation.region) == nation.calling_code
    assert nation.code == nation.code.lower()
    ZoneInfo(nation.timezone)


def test_nations_cannot_be_changed() -> None:
    with pytest.raises(TypeError):
        NATIONS["xx"] = NATIONS["in"]  # type: ignore[index]


@pytest.mark.parametrize(("code", "region"), [("id", "ID"), ("ID", "ID"), (" Tha\t", "TH")])
def test_get_nation_forgives_case_and_white_space(code: str, region: str) -> None:
    assert get_nation(code).region == region


@pytest.mark.parametrize("code", ["", "th", "xx", "i d", "indonesia"])
def test_unknown_nation_names_the_parameter_and_the_valid_codes(code: str) -> None:
    with pytest.raises(UnknownNation) as raised:
        get_nation(code)
    assert isinstance(raised.value, ValidationError)
    assert raised.value.param == "nationcode"
    assert raised.value.code == code
    assert str(raised.value) == (
        f"nationcode: unknown nation code {code!r}; valid codes are in, id, ph, mx, co, tha, vn"
    )
