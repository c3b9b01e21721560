"""Destination numbers: from what a customer typed to E.164, and from E.164 to a trunk.

The rule for accepting a number is phonenumbers' (9.0.43, pinned), parsed in the
nation's region:

* national format with or without the trunk prefix (`0812...`, `812...`), the country
  code with `+`, with the region's international call prefix where phonenumbers
  recognises it (`00` in India, but only `008`/`009` in Indonesia), or bare (`62812...`)
  when phonenumbers takes it as the country code;
* beyond phonenumbers: `00`, the calling code and a number (`006281234567890`) where
  phonenumbers refuses it and the nation's trunk prefix is `0` or none, since `00` is
  the international prefix customers everywhere write (see `fastpath`);
* `is_valid_number_for_region` must hold for the nation's region, so a valid number of
  another country given with `+` is rejected ("belongs to another country") rather than
  silently called abroad;
* numbers with an extension (`...ext 12`) are rejected: an IVR call cannot dial it, and
  calling the main line instead would reach the wrong person.

`fastpath.FastParser` decides the common digit-only shapes in about a microsecond (the
commonest three with one regular expression, `common_shapes`) and returns the same
E.164; everything it does not accept goes to `parse_with_phonenumbers`, which also words
every rejection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NewType

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat, ValidationResult

from ivrcast.errors import ConfigError, ValidationError
from ivrcast.numbers.fastpath import double_zero_is_international, fast_parser
from ivrcast.numbers.nations import Nation

E164 = NewType("E164", str)
"""`+`, the country calling code and the national significant number: `+6281234567890`."""

DEFAULT_LIMIT = 5000
"""The vendor's limit on numbers in one submission."""

SUBMITTED_MAX = 32
"""The longest submitted form kept (`ParsedNumbers.submitted`); valid numbers are shorter."""

_PARSE_REASONS = {
    NumberParseException.NOT_A_NUMBER: "not a number",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_LONG: "too long",
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
}

_LENGTH_REASONS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
}


class InvalidNumber(ValidationError):
    """A destination number cannot be called."""

    def __init__(self, number: str, reason: str) -> None:
        self.number = number
        self.reason = reason
        super().__init__("destnumber", f"{number!r}: {reason}")


class NoNumbers(ValidationError):
    """The submission holds no destination number at all."""

    def __init__(self) -> None:
        super().__init__("destnumber", "is empty")


class TooManyNumbers(ValidationError):
    """The submission holds more destination numbers than allowed."""

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__("destnumber", f"{count} numbers submitted; at most {limit} are allowed")


class InvalidNumberFormat(ConfigError):
    """A trunk's number format is not one ivrcast knows."""

    def __init__(self, number_format: str) -> None:
        self.number_format = number_format
        super().__init__(
            f"number format {number_format!r} is not 'e164', 'plus', 'national' or "
            "'prefix:' followed by up to 16 of 0-9 * #"
        )


@dataclass(frozen=True, slots=True)
class InvalidEntry:
    """A submitted item that was not accepted, and why."""

    number: str
    """The item as submitted (after `split_numbers` cleaned it)."""
    reason: str
    """A short human reason: "too short", "not a valid number for India", ..."""


@dataclass(frozen=True, slots=True)
class ParsedNumbers:
    """The outcome of `parse_destnumbers`: `total == len(valid) + duplicates + len(invalid)`."""

    valid: list[E164]
    """Accepted numbers in the order they first appeared, each once."""
    submitted: list[str]
    """Each accepted number as the customer wrote it, index for index with `valid`: its
    digits, with the `+` it started with, separators stripped (`081234567890`)."""
    duplicates: int
    """Accepted items dropped because an earlier item had the same E.164 form."""
    invalid: list[InvalidEntry]
    """Rejected items in submission order; a repeated bad item is reported each time."""
    total: int
    """Items submitted."""


def parse_with_phonenumbers(raw: str, nation: Nation) -> E164:
    """Normalise `raw` with phonenumbers (and the `00` rule): the reference the fast path
    must equal.

    Raises `InvalidNumber` with the reason for the customer.
    """
    try:
        return _parse_strictly(raw, nation)
    except InvalidNumber:
        as_plus = _double_zero_as_plus(raw, nation)
        if as_plus is None:
            raise
    try:
        return _parse_strictly(as_plus, nation)
    except InvalidNumber as refused:
        # The reason is the one for what the customer wrote.
        raise InvalidNumber(raw, refused.reason) from None


def _double_zero_as_plus(raw: str, nation: Nation) -> str | None:
    """`+` and the rest of `raw` when `raw` is `00` and the nation's calling code and the
    nation's trunk prefix lets `00` mean only "international"; else None."""
    metadata = PhoneMetadata.metadata_for_region(nation.region)
    if (
        metadata is None
        or not double_zero_is_international(metadata)
        or not raw.startswith(f"00{nation.calling_code}")
    ):
        return None
    return "+" + raw[2:]


def _parse_strictly(raw: str, nation: Nation) -> E164:
    """phonenumbers' own decision for `raw` in the nation's region."""
    try:
        number = phonenumbers.parse(raw, nation.region)
    except NumberParseException as error:
        raise InvalidNumber(raw, _PARSE_REASONS[error.error_type]) from None
    if number.extension:
        raise InvalidNumber(raw, "has an extension")
    if number.country_code != nation.calling_code:
        raise InvalidNumber(raw, f"belongs to another country (+{number.country_code})")
    if not phonenumbers.is_valid_number_for_region(number, nation.region):
        length = phonenumbers.is_possible_number_with_reason(number)
        raise InvalidNumber(
            raw, _LENGTH_REASONS.get(length, f"not a valid number for {nation.name}")
        )
    return E164(phonenumbers.format_number(number, PhoneNumberFormat.E164))


def normalize_number(raw: str, nation: Nation) -> E164:
    """Return `raw` in E.164 if it is a valid number of `nation`, else raise `InvalidNumber`.

    `raw` is one item; white space and full-width digits are `split_numbers`' job, but
    phonenumbers tolerates them here too (more slowly).
    """
    fast = fast_parser(nation.region).normalize(raw)
    if fast is not None:
        return E164(fast)
    return parse_with_phonenumbers(raw, nation)


def submitted_form(raw: str) -> str:
    """`raw` without its separators: the digits (any script's, as ASCII) after the `+` it
    started with, if any. Also the key a record filter compares with what was submitted."""
    text = raw.strip()
    plus = "+" if text[:1] in ("+", "＋") else ""
    return (plus + phonenumbers.normalize_digits_only(text))[:SUBMITTED_MAX]


_NUMBER_FORMAT = re.compile(r"e164|plus|national|prefix:[0-9*#]{0,16}")


def check_number_format(number_format: str) -> None:
    """Raise `InvalidNumberFormat` unless `format_for_trunk` accepts `number_format`.

    For the configuration loader, so a bad trunk fails at start rather than at the
    first call.
    """
    if _NUMBER_FORMAT.fullmatch(number_format) is None:
        raise InvalidNumberFormat(number_format)


def format_for_trunk(number: E164, nation: Nation, number_format: str) -> str:
    """Write an accepted number the way a trunk wants it in the Request-URI.

    * `e164`: digits without `+` (`6281234567890`);
    * `plus`: the E.164 form (`+6281234567890`);
    * `national`: as dialled inside the country, digits only: phonenumbers' national
      format, which adds the trunk prefix only where that country's dialling plan puts
      it before that kind of number (`081234567890` in Indonesia, but `3211234567` for a
      Colombian mobile and `5512345678` in Mexico, which dropped its prefixes);
    * `prefix:XXXX`: XXXX (digits, `*`, `#`; may be empty) and the national significant
      number, for carriers that route on a technical prefix.

    Raises `InvalidNumberFormat` for any other format and `ValueError` if `number` is not
    an E.164 number of `nation`.
    """
    check_number_format(number_format)
    country = f"+{nation.calling_code}"
    if not number.startswith(country):
        raise ValueError(f"{number!r} is not a number of {nation.name} ({country})")
    if number_format == "e164":
        return number[1:]
    if number_format == "plus":
        return number
    if number_format == "national":
        parsed = phonenumbers.parse(number)
        national = phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL)
        return phonenumbers.normalize_digits_only(national)
    return number_format.removeprefix("prefix:") + number[len(country) :]
