"""The fast path must decide exactly as phonenumbers does, on a large generated sample.

For every string the fast path handles (`+`? and ASCII digits) it must return the E.164
that `parse_with_phonenumbers` returns, or None exactly when that rejects the string;
for every other string it must return None, leaving the decision to phonenumbers.
"""

from __future__ import annotations

import contextlib
import random
import re

import phonenumbers
import pytest
from phonenumbers import PhoneMetadata, PhoneNumberType

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


@pytest.mark.parametrize("nation", NATIONS.values(), ids=NATIONS.keys())
def test_common_shapes_accept_only_what_phonenumbers_accepts(nation: Nation) -> None:
    """A match of `common_shapes` is an acceptance: the E.164 it yields must be
    phonenumbers' for every item it matches, and it must match a good share of the
    valid sample (else it would prove nothing and speed nothing up)."""
    parser = fast_parser(nation.region)
    disagreements = []
    matched = accepted = 0
    for item in _sample(nation):
        expected = _reference(item, nation)
        accepted += expected is not None
        common = parser.common_shapes.fullmatch(item)
        if common is not None:
            matched += 1
            got = parser.plus_country_code + common["nsn"]
            if got != expected:
                disagreements.append((item, got, expected))
    assert disagreements[:20] == []
    assert matched > accepted // 3


def _written_as_locals_write(nation: Nation, rng: random.Random) -> list[str]:
    """Valid numbers in the three common shapes: national with the prefix locals put
    before that kind of number, national without it, and `+` with the calling code."""
    written = []
    for number_type in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
        example = phonenumbers.example_number_for_type(nation.region, number_type)
        assert example is not None
        nsn = phonenumbers.national_significant_number(example)
        national = phonenumbers.normalize_digits_only(
            phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        )
        for _ in range(300):
            variant = nsn[:-4] + "".join(rng.choice(DIGITS) for _ in range(4))
            trunk = national.removesuffix(nsn)
            written += [trunk + variant, f"+{nation.calling_code}{variant}", variant]
    return written


@pytest.mark.parametrize("nation", NATIONS.values(), ids=NATIONS.keys())
def test_common_shapes_take_the_usual_spellings(nation: Nation) -> None:
    """Every valid number written the way customers usually write it is decided by the
    one pattern, with phonenumbers' E.164; every one phonenumbers refuses is left to it."""
    parser = fast_parser(nation.region)
    taken = 0
    for item in _written_as_locals_write(nation, random.Random(f"common-{nation.code}")):
        expected = _reference(item, nation)
        common = parser.common_shapes.fullmatch(item)
        if expected is None:
            assert common is None, item
            continue
        # Without the prefix locals write, a few numbers read as another shape
        # (Indonesia's 62... fixed lines start with the calling code).
        if common is not None:
            taken += 1
            assert parser.plus_country_code + common["nsn"] == expected, item
    assert taken > 1200


@pytest.mark.parametrize(
    ("code", "item"),
    [
        # Indonesia's international prefix 008/009, then its own calling code.
        ("id", "0086281234567890"),
        ("id", "0096281234567890"),
        # `00` and the calling code (ivrcast's own rule).
        ("id", "006281234567890"),
        # A trunk prefix after `+CC`, which phonenumbers strips.
        ("id", "+62081234567890"),
        # Colombia's prefix with a carrier code, and Mexico's old prefixes.
        ("co", "0353211234567"),
        ("mx", "0445512345678"),
        # Another country's number with `+`.
        ("id", "+6321234567"),
        # Full-width and Arabic-Indic digits are digits to Python's `\d`, not here.
        ("id", "０８１２３４５６７８９０"),
        ("id", "٠٨١٢٣٤٥٦٧٨٩٠"),
    ],
)
def test_common_shapes_leave_the_unusual_to_the_full_path(code: str, item: str) -> None:
    """These take a branch of phonenumbers the pattern does not replay: it must not
    match them, whatever phonenumbers then decides."""
    assert fast_parser(NATIONS[code].region).common_shapes.fullmatch(item) is None


def _every_region_the_fast_path_serves() -> list[tuple[str, FastParser]]:
    parsers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        with contextlib.suppress(ValueError):
            parsers.append((region, FastParser(region)))
    return parsers


def test_common_shapes_agree_with_phonenumbers_in_every_region() -> None:
    """The pattern's derivation is not specific to ivrcast's nations: in every region
    the fast path serves (numbers starting with 0, prefixes other than 0, IDDs that
    look like trunk prefixes), each match gives phonenumbers' E.164."""
    disagreements = []
    matched = 0
    for region, parser in _every_region_the_fast_path_serves():
        metadata = PhoneMetadata.metadata_for_region(region)
        assert metadata is not None
        assert metadata.country_code is not None
        nation = Nation(region.lower(), region, metadata.country_code, "UTC", region)
        examples = _national_examples(region)
        rng = random.Random(f"common-{region}")
        for _ in range(300 if examples else 0):
            item = _prefix(rng, nation) + _mutated(rng, rng.choice(examples))
            common = parser.common_shapes.fullmatch(item)
            if common is None:
                continue
            matched += 1
            got = parser.plus_country_code + common["nsn"]
            if got != _reference(item, nation):
                disagreements.append((region, item, got))
    assert disagreements[:20] == []
    assert matched > 10_000


def test_no_length_is_both_possible_and_local_only() -> None:
    """What the pattern's national-prefix shape relies on (see `_common_shapes_pattern`)."""
    for region in phonenumbers.SUPPORTED_REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region)
        assert metadata is not None
        assert metadata.general_desc is not None
        general = metadata.general_desc
        assert not set(general.possible_length) & set(general.possible_length_local_only), region
