"""Destination numbers: nation codes, splitting a submission, E.164 normalisation.

Pure functions over phonenumbers' metadata; nothing here knows HTTP or the database.
"""

from __future__ import annotations

from ivrcast.numbers.destnumbers import NumberStream, parse_destnumbers
from ivrcast.numbers.nations import NATIONS, Nation, UnknownNation, get_nation
from ivrcast.numbers.normalize import (
    E164,
    InvalidEntry,
    InvalidNumber,
    InvalidNumberFormat,
    NoNumbers,
    ParsedNumbers,
    TooManyNumbers,
    check_number_format,
    format_for_trunk,
    normalize_number,
    submitted_form,
)
from ivrcast.numbers.split import split_numbers

__all__ = [
    "E164",
    "NATIONS",
    "InvalidEntry",
    "InvalidNumber",
    "InvalidNumberFormat",
    "Nation",
    "NoNumbers",
    "NumberStream",
    "ParsedNumbers",
    "TooManyNumbers",
    "UnknownNation",
    "check_number_format",
    "format_for_trunk",
    "get_nation",
    "normalize_number",
    "parse_destnumbers",
    "split_numbers",
    "submitted_form",
]
