"""Reading request parameters, each failure naming the parameter.

Both interfaces hand their parameters over as plain strings (form fields, or REST fields
turned into strings), so there is one set of rules and one wording for every error.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from ivrcast.errors import ValidationError

Params = Mapping[str, str]

MAX_INTEGER = 2**63 - 1
"""The largest integer any parameter may carry: ids and counters are 64-bit columns."""


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
"""Time parameters outside these bounds are refused: no call is older than the epoch, and
the bounds keep every instant inside what both databases and Python can represent."""


def bounded_instant(name: str, value: datetime, raw: str) -> datetime:
    """`value` (zone-aware, parsed from `raw`) in UTC, once within [EARLIEST, LATEST]."""
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: before the first instant Python has
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc <= LATEST:
        raise ValidationError(
            name, f"must be from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}, got {raw!r}"
        )
    return in_utc


def sent(params: Params, name: str) -> str:
    """The parameter as sent ("" when absent). Every reader below starts here, so no
    parameter holding a NUL character gets further: no name, number, id or URL has
    one, and PostgreSQL refuses them in every statement."""
    value = params.get(name, "")
    if "\x00" in value:
        raise ValidationError(name, "must not contain a NUL character")
    return value


def required(params: Params, name: str) -> str:
    value = sent(params, name).strip()
    if not value:
        raise ValidationError(name, "is required")
    return value


def optional(params: Params, name: str) -> str | None:
    value = sent(params, name).strip()
    return value or None


def integer(params: Params, name: str, *, default: int, low: int, high: int) -> int:
    """An integer within [low, high]; absent or blank gives `default`."""
    raw = sent(params, name).strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(
            name, f"must be an integer from {low} to {high}, got {raw!r}"
        ) from None
    if not low <= value <= high:
        raise ValidationError(name, f"must be from {low} to {high}, got {value}")
    return value


def choice(params: Params, name: str, allowed: Mapping[int, str], *, default: int | None) -> int:
    """One of the integer codes in `allowed` (code → meaning, used in the message)."""
    raw = sent(params, name).strip()
    if not raw and default is not None:
        return default
    if not raw:
        raise ValidationError(name, "is required")
    described = [f"{code} ({meaning})" for code, meaning in allowed.items()]
    options = " or ".join(
        [", ".join(described[:-1]), described[-1]] if len(described) > 1 else described
    )
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(name, f"must be {options}; got {raw!r}") from None
    if value not in allowed:
        raise ValidationError(name, f"must be {options}; got {value}")
    return value


def text(params: Params, name: str, *, max_bytes: int) -> str:
    """Free customer data, kept byte for byte (no trimming) within a UTF-8 length limit."""
    value = sent(params, name)
    size = len(value.encode())
    if size > max_bytes:
        raise ValidationError(name, f"is {size} bytes long; at most {max_bytes} are allowed")
    return value
