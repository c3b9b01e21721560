"""Split a submitted `destnumber` string into one item per number.

Customers paste lists from spreadsheets, chat apps and Chinese or Japanese input methods,
so the separators and white space they produce vary more than the vendor's "connect
multiple numbers with ','" suggests. The rules:

* Items are separated by `,`, the full-width `，`, `;`, the full-width `；`, the
  ideographic commas `、` and `､`, and line breaks (every boundary `str.splitlines`
  knows), because a pasted spreadsheet column arrives one number per line.
* Every other white space character (space, tab, NBSP, the ideographic space U+3000,
  ...) and the invisible zero-width characters copy-paste leaves behind are removed,
  wherever they are: `0812 3456 7890` is one number, written in groups. White space is
  therefore *not* a separator.
* Full-width digits `０`-`９` and the full-width plus `＋` become ASCII, so that the fast
  path of `normalize` sees the plain digit strings it handles.
* Empty items (`1,,2`, a trailing comma) are dropped.

Nothing else is changed: dashes, brackets and letters go on to the parser, which
accepts or rejects them.
"""

from __future__ import annotations

ITEM_SEPARATORS = ",，;；、､\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
"""Characters that end one item and start the next."""

REMOVED_CHARACTERS = (
    "\t\x1f \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"
    # Zero-width space, non-joiner, joiner, word joiner and BOM: not white space to
    # Python, but invisible in every editor a customer could have copied from.
    "\u200b\u200c\u200d\u2060\ufeff"
)
"""White space (every `str.isspace` character that is not a separator) and invisibles."""

_TABLE: dict[int, str | None] = {
    **{ord(separator): "," for separator in ITEM_SEPARATORS},
    **{ord(removed): None for removed in REMOVED_CHARACTERS},
    **{ord("０") + digit: str(digit) for digit in range(10)},
    ord("＋"): "+",
}

# The non-ASCII entries of `_TABLE` as plain replacements. `str.translate` is fast only
# on ASCII text (CPython caches its lookups for the 128 ASCII code points); one `，` in a
# 5000-number list would otherwise make it look up every character in the dict, ten
# times slower than a few `str.replace` passes.
_NON_ASCII_REPLACEMENTS = tuple(
    (chr(code), replacement or "") for code, replacement in _TABLE.items() if code > 0x7F
)


def split_numbers(raw: str) -> list[str]:
    """Return the non-empty items of `raw`, cleaned as the module docstring describes."""
    # C-level passes over the whole string rather than a loop over items: this runs on
    # every 5000-number submission and must stay well under a millisecond.
    if not raw.isascii():
        for char, replacement in _NON_ASCII_REPLACEMENTS:
            if char in raw:
                raw = raw.replace(char, replacement)
    return [item for item in raw.translate(_TABLE).split(",") if item]
