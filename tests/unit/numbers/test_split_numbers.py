from __future__ import annotations

import sys

import pytest

from ivrcast.numbers import split_numbers
from ivrcast.numbers.split import ITEM_SEPARATORS, REMOVED_CHARACTERS


@pytest.mark.parametrize(
    ("raw", "items"),
    [
        ("133,134,135,135", ["133", "134", "135", "135"]),
        ("133，134，135，135", ["133", "134", "135", "135"]),  # the seed's own example
        ("133;134；135、136､137", ["133", "134", "135", "136", "137"]),
        ("133\n134\r\n135\r136\u2028137", ["133", "134", "135", "136", "137"]),
        (" 0812 3456 7890 , +62 812\t3456\u00a07890 ", ["081234567890", "+6281234567890"]),
        ("\u3000０８１２\u3000３４５６，＋６２８１２", ["08123456", "+62812"]),
        ("\ufeff0812\u200b3456", ["08123456"]),
        (",,133,, ,，\n,", ["133"]),
        ("0812-3456-7890,(021) 835.0123", ["0812-3456-7890", "(021)835.0123"]),
        ("", []),
        (" ,\u3000，\n", []),
    ],
)
def test_split_numbers(raw: str, items: list[str]) -> None:
    assert split_numbers(raw) == items


def test_every_white_space_character_is_a_separator_or_removed() -> None:
    white_space = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert white_space <= set(ITEM_SEPARATORS) | set(REMOVED_CHARACTERS)
    assert not set(ITEM_SEPARATORS) & set(REMOVED_CHARACTERS)


def test_line_breaks_are_exactly_those_of_splitlines() -> None:
    line_breaks = {chr(c) for c in range(sys.maxunicode + 1) if len(f"a{chr(c)}b".splitlines()) > 1}
    assert line_breaks == set(ITEM_SEPARATORS) - set(",，;；、､")


def test_non_ascii_input_is_split_like_its_ascii_equivalent() -> None:
    ascii_list = ",".join(f"0812{i:08d}" for i in range(100))
    full_width = ascii_list.translate(
        {ord(","): "，", **{ord(str(d)): chr(ord("０") + d) for d in range(10)}}
    )
    assert split_numbers(full_width) == split_numbers(ascii_list)


def test_other_characters_are_left_for_the_parser() -> None:
    assert split_numbers("0812abc|9") == ["0812abc|9"]
