"""The nation codes a customer may put in `nationcode` (design section 3).

The codes are the vendor's, not ISO 3166: Thailand is `tha`, and `in`/`id` happen to
match ISO. Each nation carries the ISO region that phonenumbers knows it by, so the rest
of the package never has to translate codes itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ivrcast.errors import ValidationError


@dataclass(frozen=True, slots=True)
class Nation:
    """A country numbers can be submitted for."""

    code: str
    """The vendor's nation code, lower case (`in`, `tha`, ...)."""
    region: str
    """ISO 3166-1 alpha-2 region, as phonenumbers names it (`IN`, `TH`, ...)."""
    calling_code: int
    """ITU country calling code (91 for India)."""
    timezone: str
    """IANA time zone the dialing windows of this nation are expressed in."""
    name: str
    """English name, for messages."""


NATIONS: Mapping[str, Nation] = MappingProxyType(
    {
        nation.code: nation
        for nation in (
            Nation("in", "IN", 91, "Asia/Kolkata", "India"),
            Nation("id", "ID", 62, "Asia/Jakarta", "Indonesia"),
            Nation("ph", "PH", 63, "Asia/Manila", "Philippines"),
            Nation("mx", "MX", 52, "America/Mexico_City", "Mexico"),
            Nation("co", "CO", 57, "America/Bogota", "Colombia"),
            Nation("tha", "TH", 66, "Asia/Bangkok", "Thailand"),
            Nation("vn", "VN", 84, "Asia/Ho_Chi_Minh", "Vietnam"),
        )
    }
)


class UnknownNation(ValidationError):
    """The nation code is not one ivrcast serves."""

    def __init__(self, code: str) -> None:
        self.code = code
        valid = ", ".join(NATIONS)
        super().__init__("nationcode", f"unknown nation code {code!r}; valid codes are {valid}")


def get_nation(code: str) -> Nation:
    """Return the nation for a vendor nation code.

    Case and surrounding white space are forgiven because form clients send `ID` or
    `id ` as readily as `id`; anything else raises `UnknownNation`.
    """
    nation = NATIONS.get(code.strip().lower())
    if nation is None:
        raise UnknownNation(code)
    return nation
