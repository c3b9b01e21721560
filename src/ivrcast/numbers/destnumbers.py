"""A submission's `destnumber` list: split, each item decided, duplicates dropped.

`parse_destnumbers` decides the whole list at once. `NumberStream` decides it a chunk at
a time while a consumer takes the accepted numbers, so that PlayVoice can write each
chunk to the database while the next is parsed (on PostgreSQL the server checks and
indexes the rows of one chunk while Python decides the next).
"""

from __future__ import annotations

from collections.abc import Iterator

from ivrcast.numbers.fastpath import fast_parser
from ivrcast.numbers.nations import Nation
from ivrcast.numbers.normalize import (
    DEFAULT_LIMIT,
    E164,
    InvalidEntry,
    InvalidNumber,
    NoNumbers,
    ParsedNumbers,
    TooManyNumbers,
    parse_with_phonenumbers,
    submitted_form,
)
from ivrcast.numbers.split import split_numbers

CHUNK = 512
"""Items decided at a time by `NumberStream`: a few dozen kilobytes of COPY data."""


class NumberStream:
    """The accepted numbers of a `destnumber` parameter, decided as they are taken.

    Construction splits and counts the items, so `NoNumbers` and `TooManyNumbers` are
    raised at once. Iterating yields each accepted number once, in the order it first
    appeared, with its submitted form; once iterated to the end, `parsed()` is what
    `parse_destnumbers` returns for the same parameter.
    """

    def __init__(self, raw: str, nation: Nation, *, limit: int = DEFAULT_LIMIT) -> None:
        self.items = split_numbers(raw)
        """The submitted items, each cleaned by `split_numbers`."""
        if not self.items:
            raise NoNumbers()
        if len(self.items) > limit:
            raise TooManyNumbers(len(self.items), limit)
        self._nation = nation
        self._parser = fast_parser(nation.region)
        self._seen: set[str] = set()
        self._valid: list[E164] = []
        self._submitted: list[str] = []
        self._invalid: list[InvalidEntry] = []
        self._decided = 0

    def __iter__(self) -> Iterator[tuple[E164, str]]:
        while self._decided < len(self.items):
            start = len(self._valid)
            self._decide(self.items[self._decided : self._decided + CHUNK])
            yield from zip(self._valid[start:], self._submitted[start:], strict=True)

    @property
    def undecided(self) -> bool:
        """True until an item has been decided (iteration started or `decide_all`)."""
        return self._decided == 0

    def decide_all(self) -> ParsedNumbers:
        """Decide every item not yet decided, in one go; returns `parsed()`."""
        self._decide(self.items[self._decided :])
        return self.parsed()

    def parsed(self) -> ParsedNumbers:
        """The outcome; raises `RuntimeError` while items are left undecided."""
        if self._decided < len(self.items):
            raise RuntimeError("the numbers have not all been decided")
        return ParsedNumbers(
            valid=self._valid,
            submitted=self._submitted,
            duplicates=len(self.items) - len(self._valid) - len(self._invalid),
            invalid=self._invalid,
            total=len(self.items),
        )

    def _decide(self, items: list[str]) -> None:
        self._decided += len(items)
        parser = self._parser
        plus_country_code = parser.plus_country_code
        # The common shapes are matched in one C-level pass. When every item is one of
        # them and none repeats, which is what a client's list usually is, that is all
        # there is to do; both fast paths take only `+`? and ASCII digits, so an item
        # accepted there is its own submitted form.
        matches = list(map(parser.common_shapes.fullmatch, items))
        if None not in matches:
            numbers = [E164(plus_country_code + match["nsn"]) for match in matches if match]
            distinct = set(numbers)
            if len(distinct) == len(numbers) and self._seen.isdisjoint(distinct):
                self._seen.update(distinct)
                self._valid += numbers
                self._submitted += items
                return
        for item, common in zip(items, matches, strict=True):
            number = plus_country_code + common["nsn"] if common else parser.normalize(item)
            written = item
            if number is None:
                try:
                    number = parse_with_phonenumbers(item, self._nation)
                except InvalidNumber as error:
                    self._invalid.append(InvalidEntry(item, error.reason))
                    continue
                written = submitted_form(item)
            if number not in self._seen:
                self._seen.add(number)
                self._valid.append(E164(number))
                self._submitted.append(written)


def parse_destnumbers(raw: str, nation: Nation, *, limit: int = DEFAULT_LIMIT) -> ParsedNumbers:
    """Split, normalise and deduplicate a `destnumber` parameter.

    Raises `NoNumbers` when there is no item and `TooManyNumbers` when there are more
    than `limit` (counted before deduplication, as the customer counts them). Invalid
    items do not fail the submission; they are returned in `invalid`.
    """
    return NumberStream(raw, nation, limit=limit).decide_all()
