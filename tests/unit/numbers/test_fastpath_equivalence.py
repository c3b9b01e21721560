"""The fast path must decide exactly as phonenumbers does, on a large generated sample.

For every string the fast path handles (`+`? and ASCII digits) it must return the E.164
that `parse_with_phonenumbers` returns, or None exactly when that rejects the string;
for every other string it must return None, leaving the decision to phonenumbers.
"""

from __future__ import annotations

import random
import re

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from ivrcast.numbers import NATIONS, InvalidNumber, Nation, normalize_number
from ivrcast.numbers.fastpath import FastParser, fast_parser
from ivrcast.numbers.normalize import parse_with_phonenumbers

SAMPLE_SIZE = 25_000
FAST_SHAPE = re.compile(r"\+?[0-9]+")
DIGITS = "0123456789"
ALL_TYPES = [value for name, value in vars(PhoneNumberType).items() if name.isupper()]

# International call prefixes in use somewhere, so that each region meets its own and
# others' (Indonesia's 008/009 but not 00, Colombia's 005/007/009, Thailand's 001...).
IDDS = ["00", "000", "001", "005", "007", "008", "009", "0011", "011", "01", "09", "01017"]
# Calling codes to put after `+` or an IDD: ours, our neighbours', 1-digit and unknown.
OTHER_CODES = ["1", "7", "44", "52", "57", "62", "63", "66", "84", "91", "999", "0", "00"]
# Colombia's national prefix takes carrier codes (03, 05, 0444 ...): try them everywhere.
NATIONAL_PREFIXES = ["0", "00", "03", "05", "07", "09", "0444", "0456", "1"]
NOISE = DIGITS + "+-().x#*/ ;abcEXT０٣"


def _national_examples(region: str) -> list[str]:
    examples = []
    for number_type in ALL_TYPES:
        number = phonenumbers.example_number_for_type(region, number_type)
        if number is not None:
            examples.append(phonenumbers.national_significant_number(number))
    return examples


EXAMPLES = {nation.code: _national_examples(nation.region) for nation in NATIONS.values()}


def _mutated(rng: random.Random, digits: str) -> str:
    """Up to three digit changes, insertions or deletions: near-valid numbers."""
    chars = list(digits)
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3))):
        roll = rng.random()
        if roll < 0.6 and chars:
            chars[rng.randrange(len(chars))] = rng.choice(DIGITS)
        elif roll < 0.8:
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(DIGITS))
        elif chars:
            del chars[rng.randrange(len(chars))]
    return "".join(chars)


def _prefix(rng: random.Random, nation: Nation) -> str:
    cc = str(nation.calling_code)
    other = rng.choice(OTHER_CODES)
    return rng.choice(
        [
            "",
            "",
            "",
            "0",
            rng.choice(NATIONAL_PREFIXES),
            cc,
            cc + "0",
            "+" + cc,
            "+" + cc,
            "+" + cc + rng.choice(NATIONAL_PREFIXES),
            rng.choice(IDDS) + cc,
            rng.choice(IDDS) + cc + "0",
            rng.choice(IDDS) + other,
            "+" + other,
            "+" + rng.choice(IDDS) + cc,
        ]
    )


def _sample(nation: Nation) -> list[str]:
    rng = random.Random(f"ivrcast-numbers-{nation.code}")
    codes = list(EXAMPLES)
    sample = []
    for _ in range(SAMPLE_SIZE):
        roll = rng.random()
        if roll < 0.75:
            source = nation.code if rng.random() < 0.8 else rng.choice(codes)
            number = _mutated(rng, rng.choice(EXAMPLES[source]))
            sample.append(_prefix(rng, nation) + number)
        elif roll < 0.9:
            length = rng.randrange(0, 21)
            digits = "".join(rng.choice(DIGITS) for _ in range(length))
            sample.append(rng.choice(("", "+", "0", "00")) + digits)
        else:
            length = rng.randrange(0, 17)
            sample.append("".join(rng.choice(NOISE) for _ in range(length)))
    return sample


def _reference(item: str, nation: Nation) -> str | None:
    try:
        return parse_with_phonenumbers(item, nation)
    except InvalidNumber:
        return None


@pytest.mark.parametrize("nation", NATIONS.values(), ids=NATIONS.keys())
def test_fast_path_decides_exactly_as_phonenumbers(nation: Nation) -> None:
    fast = fast_parser(nation.region)
    disagreements = []
    accepted = rejected = 0
    for item in _sample(nation):
        expected = _reference(item, nation)
        if expected is None:
            rejected += 1
        else:
            accepted += 1
        got = fast.normalize(item)
        if got != (expected if FAST_SHAPE.fullmatch(item) else None):
            disagreements.append((item, got, expected))
    assert disagreements[:20] == []
    # A sample that is nearly all valid or all invalid would prove little.
    assert accepted > SAMPLE_SIZE // 8
    assert rejected > SAMPLE_SIZE // 4


@pytest.mark.parametrize("nation", NATIONS.values(), ids=NATIONS.keys())
def test_normalize_number_equals_phonenumbers_whatever_the_shape(nation: Nation) -> None:
    for item in _sample(nation)[:2000]:
        try:
            got: str | None = normalize_number(item, nation)
        except InvalidNumber:
            got = None
        assert got == _reference(item, nation), item


@pytest.mark.parametrize("region", ["US", "RU"])
def test_shared_calling_codes_are_refused(region: str) -> None:
    with pytest.raises(ValueError, match="shares its calling code"):
        FastParser(region)


def test_unknown_region_is_refused() -> None:
    with pytest.raises(ValueError, match="no metadata"):
        FastParser("XX")


def test_transform_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="transform rule"):
        FastParser("AR")
