"""A fast, exactly-as-strict replacement for `phonenumbers.parse` + validate + format.

phonenumbers spends 15-30 µs on one number (it builds a `PhoneNumber`, looks up
compiled patterns by string, walks ten number types one regex at a time and formats
through the formatting rules). A 5000-number submission must be ingested in well under
80 ms, so the common shapes take this path instead:

* ASCII digits only: national with or without the trunk prefix, the country code
  without `+`, or an international call prefix (IDD) and the country code;
* `+` and ASCII digits.

It also applies ivrcast's one rule beyond phonenumbers, exactly as
`normalize.parse_with_phonenumbers` does: where phonenumbers refuses digits written
`00`, the calling code and a number (Indonesia knows only `008`/`009` as international
prefixes), and the nation's trunk prefix is `0` or none (so no national number can start
`00`), the `00` is read as the `+` it stands for everywhere else.

For those shapes `FastParser.normalize` replays, step for step, what
`phonenumbers.parse(item, region)` followed by `is_valid_number` and E.164 formatting do
in phonenumbers 9.0.43 (`_maybe_extract_country_code`, `_parse_prefix_as_idd`,
`_maybe_strip_national_prefix_carrier_code`, `_test_number_length`,
`_number_type_helper`), using patterns compiled once from phonenumbers' own metadata.
It returns the E.164 string only when that sequence accepts the number for this region,
and `None` for everything else: other shapes, other countries and invalid numbers alike.
The caller then runs phonenumbers itself, so every rejection and its reason come from
one place. `tests/unit/numbers/test_fastpath_equivalence.py` holds both to agreement on
a large generated sample; upgrade phonenumbers only with that test passing.

`FastParser.common_shapes` goes one step further for the three shapes nearly every
submission consists of (national with the trunk prefix, national without it, and `+`
with the calling code): one regular expression, matched in C, that accepts exactly the
items `normalize` accepts in those shapes, so a 5000-number list costs about 0.4 µs a
number instead of 1.2 µs of Python steps. The derivation is in `_common_shapes_pattern`.
"""

from __future__ import annotations

import re
from functools import cache

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberDesc

# phonenumberutil._MAX_LENGTH_FOR_NSN: parse raises TOO_LONG above it, so no longer
# national number can ever be valid.
MAX_NSN_LENGTH = 17

# phonenumberutil._MAX_LENGTH_COUNTRY_CODE and the codes `_extract_country_code` knows,
# non-geographic ones (+800, +882, ...) included.
_MAX_COUNTRY_CODE_LENGTH = 3
_KNOWN_COUNTRY_CODES = frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)

# The descriptions `_number_type_helper` tries after the general one; a number is valid
# when the general description and at least one of these match.
_NUMBER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def _starts_with_known_code(digits: str) -> bool:
    """True when `_extract_country_code` finds a calling code at the start of `digits`."""
    return digits[:1] != "0" and any(
        digits[:length] in _KNOWN_COUNTRY_CODES for length in range(1, _MAX_COUNTRY_CODE_LENGTH + 1)
    )


def _accepts_length(desc: PhoneNumberDesc, length: int) -> bool:
    # `_is_number_matching_desc`: an empty possible-length list means "any length".
    return not desc.possible_length or length in desc.possible_length


def _valid_number_patterns(
    metadata: PhoneMetadata, general: PhoneNumberDesc
) -> dict[int, re.Pattern[str]]:
    """One pattern per national number length that fullmatches exactly the valid numbers.

    Each is `(?=general\\Z)(?:type|type|...)`, built from the type descriptions whose
    possible lengths include that length, so one regex call replaces the general check,
    the length checks and up to ten type checks of `_number_type_helper`. Alternation
    under `fullmatch` backtracks into every branch, so it accepts exactly when one of the
    separate fullmatches would.
    """
    descs = [
        desc
        for desc in (getattr(metadata, name) for name in _NUMBER_TYPES)
        if desc is not None and desc.national_number_pattern
    ]
    patterns: dict[int, re.Pattern[str]] = {}
    for length in range(1, MAX_NSN_LENGTH + 1):
        alternatives = [
            f"(?:{desc.national_number_pattern})" for desc in descs if _accepts_length(desc, length)
        ]
        if alternatives and _accepts_length(general, length):
            # Only ever given ASCII digits (the callers check), so `\d` may be ASCII's:
            # a range test instead of a Unicode category lookup, twice as fast.
            patterns[length] = re.compile(
                rf"(?=(?:{general.national_number_pattern})\Z)(?:{'|'.join(alternatives)})",
                re.ASCII,
            )
    return patterns


def _common_shapes_pattern(
    metadata: PhoneMetadata, valid: dict[int, re.Pattern[str]]
) -> re.Pattern[str]:
    """One pattern that fullmatches the common shapes `normalize` accepts; group `nsn`
    is the national significant number.

    Each alternative replays the steps of `_normalize_as_phonenumbers` for its shape with
    lookaheads that hold exactly when those steps take the simple branch, so a match is
    an acceptance with the same E.164 (`+`, the calling code, `nsn`):

    * `+CC(?!NP)`: the calling code after `+`, then no national prefix to strip;
    * `(?!IDD(?!0))(?!NP)`: no international prefix `_strip_idd` would take (every match
      of it not followed by `0` is excluded, so `match`'s first one cannot be taken) and
      no national prefix, so nothing is stripped. Digits that start with the calling
      code come out the same: `_national_number` keeps the whole when it matches the
      general pattern, which a valid whole does;
    * `(?!IDD(?!0))(?!CC)NP`, only where the national prefix for parsing is a plain
      digit string: the same, no calling code, then that prefix stripped. A valid rest
      also matches the general pattern, so the prefix is not kept for that, nor by
      `_keeps_stripped`: a valid length is a possible one, and phonenumbers' metadata
      never lists a length as both possible and local-only (a test holds it to that).

    The shapes exclude one another by their first characters, so no item can match in
    two ways. `nsn` is one of the `valid` patterns, guarded by its length, which also
    keeps it to ASCII digits, as `normalize`'s `isascii` checks do. Anything else (other
    shapes, other prefixes, invalid numbers) does not match and goes to `normalize`.
    """
    country_code = str(metadata.country_code)
    idd = metadata.international_prefix
    national_prefix = metadata.national_prefix_for_parsing
    no_idd = f"(?!(?:{idd})(?!0))" if idd else ""
    no_prefix = f"(?!(?:{national_prefix}))" if national_prefix else ""
    shapes = [rf"\+{country_code}{no_prefix}", f"{no_idd}{no_prefix}"]
    if national_prefix and national_prefix.isascii() and national_prefix.isdigit():
        shapes.append(f"{no_idd}(?!{country_code}){national_prefix}")
    numbers = "|".join(rf"(?=[0-9]{{{n}}}\Z){pattern.pattern}" for n, pattern in valid.items())
    return re.compile(f"(?:{'|'.join(shapes)})(?P<nsn>{numbers})", re.ASCII)


class FastParser:
    """Normalises the common shapes of numbers for one region; see the module docstring."""

    __slots__ = (
        "_country_code",
        "_double_zero_country_code",
        "_general",
        "_idd",
        "_local_only_lengths",
        "_max_length",
        "_national_prefix",
        "_possible_lengths",
        "_valid",
        "common_shapes",
        "plus_country_code",
    )

    def __init__(self, region: str) -> None:
        metadata = PhoneMetadata.metadata_for_region(region)
        general = metadata.general_desc if metadata is not None else None
        if (
            metadata is None
            or metadata.country_code is None
            or general is None
            or not general.national_number_pattern
        ):
            raise ValueError(f"phonenumbers has no metadata for region {region!r}")
        # Where regions share a calling code (+1, +7, +44, ...) phonenumbers picks the
        # region from the digits; the replay below assumes the calling code is the region.
        if COUNTRY_CODE_TO_REGION_CODE.get(metadata.country_code) != (region,):
            raise ValueError(f"region {region!r} shares its calling code with other regions")
        # The transform rules of a few countries (Argentina, Mexico before 2020) rewrite
        # the national number; none of ivrcast's nations has one, so it is not replayed.
        if metadata.national_prefix_transform_rule:
            raise ValueError(f"region {region!r} has a national prefix transform rule")
        self._country_code = str(metadata.country_code)
        self.plus_country_code = "+" + self._country_code
        """`+` and the calling code: what `common_shapes`' `nsn` follows in E.164."""
        self._double_zero_country_code = (
            "00" + self._country_code if double_zero_is_international(metadata) else None
        )
        self._idd = re.compile(metadata.international_prefix or "(?!)")
        self._national_prefix = re.compile(metadata.national_prefix_for_parsing or "(?!)")
        self._general = re.compile(general.national_number_pattern, re.ASCII)
        self._possible_lengths = frozenset(general.possible_length)
        self._local_only_lengths = frozenset(general.possible_length_local_only)
        self._max_length = max(general.possible_length)
        self._valid = _valid_number_patterns(metadata, general)
        self.common_shapes = _common_shapes_pattern(metadata, self._valid)
        """Fullmatches a subset of what `normalize` accepts; see `_common_shapes_pattern`."""

    def normalize(self, item: str) -> str | None:
        """The E.164 form phonenumbers gives `item`, or None to let phonenumbers decide.

        None means "not accepted here": `item` is not a plain digit string, carries
        another country code, or is not a valid number of the region.
        """
        found = self._normalize_as_phonenumbers(item)
        if (
            found is None
            and self._double_zero_country_code is not None
            and item.startswith(self._double_zero_country_code)
        ):
            return self._normalize_as_phonenumbers("+" + item[2:])
        return found

    def _normalize_as_phonenumbers(self, item: str) -> str | None:
        """`normalize` without the `00` rule: phonenumbers' decision alone."""
        if item[:1] == "+":
            found = self._national_number_after_plus(item[1:])
        elif item.isdigit() and item.isascii():
            found = self._national_number(item)
        else:
            return None
        if found is None:
            return None
        # `parse` strips the national prefix once more from whatever it extracted, and
        # keeps the result only when its length is possible (or too long) for the region.
        stripped = self._strip_national_prefix(found)
        national = stripped if self._keeps_stripped(stripped) else found
        valid = self._valid.get(len(national))
        if valid is None or valid.fullmatch(national) is None:
            return None
        # The national significant number phonenumbers formats is these very digits:
        # its italian-leading-zero bookkeeping restores every leading zero it parsed.
        return self.plus_country_code + national

    def _national_number_after_plus(self, digits: str) -> str | None:
        """`_maybe_extract_country_code` for `+` and `digits`, with `parse`'s retry.

        Returns the national number before `parse`'s own prefix stripping, or None when
        phonenumbers would find another country code or none.
        """
        if not (digits.isdigit() and digits.isascii()):
            return None
        # Calling codes are a prefix code, so `_extract_country_code` finds this
        # region's code exactly when the digits start with it.
        if digits.startswith(self._country_code):
            return digits[len(self._country_code) :]
        # When no known code follows the `+` (`+0062...`), `parse` drops the `+` and
        # tries again, where only an international call prefix can supply the code.
        # (`parse` skips the retry after two digits or fewer, which are never valid.)
        if not _starts_with_known_code(digits):
            after_idd = self._strip_idd(digits)
            if after_idd is not None:
                return self._after_country_code(after_idd)
        return None

    def _national_number(self, digits: str) -> str | None:
        """`_maybe_extract_country_code` for a string of digits without `+`.

        Returns the national number before `parse`'s own prefix stripping, or None when
        the digits start with an IDD followed by another (or no) country code.
        """
        after_idd = self._strip_idd(digits)
        if after_idd is not None:
            return self._after_country_code(after_idd)
        if digits.startswith(self._country_code):
            without_code = self._strip_national_prefix(digits[len(self._country_code) :])
            # The country code without `+` is taken as such when the whole string is not
            # a national number and the rest is, or when the whole string is too long.
            if (
                self._general.fullmatch(digits) is None
                and self._general.fullmatch(without_code) is not None
            ) or self._is_too_long(digits):
                return without_code
        return digits

    def _strip_idd(self, digits: str) -> str | None:
        """`_parse_prefix_as_idd`: the digits after the region's IDD, None if there is none.

        A match counts only if no `0` follows it, because no calling code starts with 0.
        """
        idd = self._idd.match(digits)
        if idd is None or digits[idd.end() : idd.end() + 1] == "0":
            return None
        return digits[idd.end() :]

    def _after_country_code(self, digits: str) -> str | None:
        """The digits after this region's calling code, None if another (or none) leads."""
        if digits.startswith(self._country_code):
            return digits[len(self._country_code) :]
        return None

    def _strip_national_prefix(self, national: str) -> str:
        """`_maybe_strip_national_prefix_carrier_code`, without the carrier code."""
        prefix = self._national_prefix.match(national)
        if prefix is None:
            return national
        stripped = national[prefix.end() :]
        # A number that matched the general pattern keeps its prefix if stripping it
        # would make it stop matching.
        if (
            self._general.fullmatch(national) is not None
            and self._general.fullmatch(stripped) is None
        ):
            return national
        return stripped

    def _keeps_stripped(self, national: str) -> bool:
        """True when `_test_number_length` says IS_POSSIBLE or TOO_LONG."""
        length = len(national)
        if length in self._local_only_lengths:
            return False
        return length in self._possible_lengths or length > self._max_length

    def _is_too_long(self, national: str) -> bool:
        """True when `_test_number_length` says TOO_LONG."""
        length = len(national)
        return length not in self._local_only_lengths and length > self._max_length


def double_zero_is_international(metadata: PhoneMetadata) -> bool:
    """True when `00` before the calling code can only be an international prefix: the
    region's trunk prefix is `0` or none, so a national number never starts with `00`."""
    return metadata.national_prefix in (None, "", "0")


@cache
def fast_parser(region: str) -> FastParser:
    """The parser for `region`, built on first use (compiling costs a few milliseconds)."""
    return FastParser(region)
