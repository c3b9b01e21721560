from __future__ import annotations

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from ivrcast.errors import ValidationError
from ivrcast.numbers import (
    NATIONS,
    InvalidEntry,
    InvalidNumber,
    Nation,
    NoNumbers,
    TooManyNumbers,
    get_nation,
    normalize_number,
    parse_destnumbers,
)


def _examples() -> list[tuple[Nation, str, list[str]]]:
    """(nation, E.164, shapes to write it in) for each nation's mobile and fixed-line example.

    The shapes are those phonenumbers itself formats the example in, and the national
    format without its punctuation, so locals' own spelling (trunk prefix or not) is
    covered. The country code without `+` is not among them: see `test_accepted_shapes`.
    """
    examples = []
    for nation in NATIONS.values():
        for number_type in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(nation.region, number_type)
            assert number is not None
            nsn = phonenumbers.national_significant_number(number)
            written = [
                phonenumbers.format_number(number, number_format)
                for number_format in (
                    PhoneNumberFormat.NATIONAL,
                    PhoneNumberFormat.INTERNATIONAL,
                    PhoneNumberFormat.RFC3966,
                )
            ]
            national_digits = phonenumbers.normalize_digits_only(written[0])
            shapes = [nsn, national_digits, *written]
            e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
            examples.append((nation, e164, [*shapes, e164]))
    return examples


EXAMPLES = _examples()


@pytest.mark.parametrize(
    ("nation", "e164", "shapes"), EXAMPLES, ids=[f"{n.code}-{e}" for n, e, _ in EXAMPLES]
)
def test_example_numbers_in_every_common_shape(
    nation: Nation, e164: str, shapes: list[str]
) -> None:
    for shape in shapes:
        assert normalize_number(shape, nation) == e164, shape


@pytest.mark.parametrize(
    ("code", "raw", "e164"),
    [
        ("id", "6281234567890", "+6281234567890"),  # country code without +
        # ... is read as such only if the digits are no national number: 628... is a
        # valid Indonesian fixed-line number, so this is not +62 812345678.
        ("id", "62812345678", "+6262812345678"),
        ("id", "+62081234567890", "+6281234567890"),  # + and the trunk prefix
        ("id", "00862812345678", "+62812345678"),  # Indonesia's IDD is 008/009 ...
        ("in", "00919876543210", "+919876543210"),  # ... India's is 00
        # `00` as the international prefix where phonenumbers refuses it: Indonesia's
        # 0062 (no IDD there), Colombia's 0057 (read as IDD 005 and +7), Thailand's 0066.
        ("id", "0062812345678", "+62812345678"),
        ("id", "006281234500004", "+6281234500004"),
        ("co", "00573211234567", "+573211234567"),
        ("tha", "0066812345678", "+66812345678"),
        ("id", "０８１２３４５６７８９０", "+6281234567890"),
        ("co", "3211234567", "+573211234567"),
        ("mx", "5512345678", "+525512345678"),
    ],
)
def test_accepted_shapes(code: str, raw: str, e164: str) -> None:
    assert normalize_number(raw, get_nation(code)) == e164


@pytest.mark.parametrize(
    ("code", "raw", "reason"),
    [
        ("id", "", "not a number"),
        ("id", "abc", "not a number"),
        ("id", "1", "not a number"),
        ("id", "12", "too short"),
        ("id", "+62", "not a number"),
        ("id", "+6212", "too short"),
        ("id", "1234567890123456789012", "too long"),
        ("id", "0812345", "not a valid number for Indonesia"),
        ("in", "0123456789", "not a valid number for India"),
        ("vn", "1234", "too short"),
        ("id", "+44 20 7946 0958", "belongs to another country (+44)"),
        ("in", "+6281234567890", "belongs to another country (+62)"),
        # An international prefix and another country's code stays another country's.
        ("co", "00944207946095", "belongs to another country (+44)"),
        ("id", "+999123456", "unknown country code"),
        ("id", "0812345678ext12", "has an extension"),
        # `00` read as `+` gives +62 123, still too short; reported for what was written.
        ("id", "0062123", "too short"),
    ],
)
def test_rejections_carry_a_reason(code: str, raw: str, reason: str) -> None:
    with pytest.raises(InvalidNumber) as raised:
        normalize_number(raw, get_nation(code))
    error = raised.value
    assert isinstance(error, ValidationError)
    assert (error.param, error.number, error.reason) == ("destnumber", raw, reason)
    assert str(error) == f"destnumber: {raw!r}: {reason}"


def test_parse_destnumbers_dedupes_across_formats_and_keeps_first_order() -> None:
    parsed = parse_destnumbers(
        "0812 3456 7890，+62812-3456-7890, 6281234567890,0812345678,123,"
        "+44 20 7946 0958, 123, 081234567890",
        get_nation("id"),
    )
    assert parsed.valid == ["+6281234567890", "+62812345678"]
    # Each as first written, separators stripped.
    assert parsed.submitted == ["081234567890", "0812345678"]
    assert parsed.duplicates == 3
    assert parsed.invalid == [
        InvalidEntry("123", "too short"),
        InvalidEntry("+442079460958", "belongs to another country (+44)"),
        InvalidEntry("123", "too short"),
    ]
    assert parsed.total == 8
    assert parsed.total == len(parsed.valid) + parsed.duplicates + len(parsed.invalid)


def test_submitted_forms_keep_the_plus_and_the_digits_only() -> None:
    written = "+62 (812) 3456-7890,００６２８１２３４５６７８９１"
    parsed = parse_destnumbers(written, get_nation("id"))
    assert parsed.valid == ["+6281234567890", "+6281234567891"]
    assert parsed.submitted == ["+6281234567890", "006281234567891"]


def test_parse_destnumbers_all_invalid_is_not_an_error() -> None:
    parsed = parse_destnumbers("x,12", get_nation("vn"))
    assert (parsed.valid, parsed.duplicates, parsed.total) == ([], 0, 2)
    assert [entry.reason for entry in parsed.invalid] == ["not a number", "too short"]


@pytest.mark.parametrize("raw", ["", " ", ",,，\n", "\u3000"])
def test_parse_destnumbers_empty(raw: str) -> None:
    with pytest.raises(NoNumbers) as raised:
        parse_destnumbers(raw, get_nation("id"))
    assert isinstance(raised.value, ValidationError)
    assert raised.value.param == "destnumber"
    assert str(raised.value) == "destnumber: is empty"


def test_parse_destnumbers_limit_counts_items_before_dedupe() -> None:
    nation = get_nation("id")
    assert parse_destnumbers(",".join(["081234567890"] * 5000), nation).duplicates == 4999
    with pytest.raises(TooManyNumbers) as raised:
        parse_destnumbers(",".join(["081234567890"] * 5001), nation)
    assert raised.value.param == "destnumber"
    assert (raised.value.count, raised.value.limit) == (5001, 5000)
    assert str(raised.value) == "destnumber: 5001 numbers submitted; at most 5000 are allowed"


def test_parse_destnumbers_custom_limit() -> None:
    nation = get_nation("ph")
    assert parse_destnumbers("1,2", nation, limit=2).total == 2
    with pytest.raises(TooManyNumbers):
        parse_destnumbers("1,2,3", nation, limit=2)
