from __future__ import annotations

import pytest

from ivrcast.errors import ValidationError
from ivrcast.voices import InvalidVoiceName, validate_voice_name


@pytest.mark.parametrize(
    "name",
    ["a", "welcome", "Promo_2024-07.v2", "0", "_x", "-dash", "a..b", "x" * 64, "trailing."],
)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert validate_voice_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "is empty"),
        ("x" * 65, "65 characters long; at most 64"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("../etc", "path separator"),
        ("a\x00b", "control characters"),
        ("line\nbreak", "control characters"),
        ("tab\there", "control characters"),
        ("del\x7f", "control characters"),
        ("c1\x85", "control characters"),
        (".hidden", "must not start with '.'"),
        (".", "must not start with '.'"),
        ("..", "must not start with '.'"),
        ("with space", "only English letters"),
        ("café", "only English letters"),
        ("ｆｕｌｌ", "only English letters"),
        ("٣", "only English letters"),
        ("a:b", "only English letters"),
    ],
)
def test_invalid_names_are_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(InvalidVoiceName) as caught:
        validate_voice_name(name)
    assert isinstance(caught.value, ValidationError)
    assert caught.value.param == "name"
    assert reason in str(caught.value)
