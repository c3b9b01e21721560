"""Number parsing: the fast path against phonenumbers alone, in the same run.

For each nation, 5000 realistic destination numbers (mobile and fixed-line numbers
grown from phonenumbers' examples, written the ways customers write them, a few
percent invalid) are normalised three ways:

* common: `FastParser.common_shapes` alone (one regular expression for the three usual
  shapes; the share of the numbers it decides, and its cost per number);
* fast: `FastParser.normalize` alone, the per-number cost of the fast path;
* full: `parse_with_phonenumbers`, i.e. phonenumbers' parse + validate + format;
* request: `parse_destnumbers` on the comma-joined list, i.e. what PlayVoice pays:
  splitting, the fast path, the fallback for the invalid few, and deduplication;
* clean: `parse_destnumbers` of only the distinct numbers `common_shapes` takes, the
  list a client that sends valid numbers in the usual shapes sends (as `bench/ingest.py`
  does).

Each figure is the median of several rounds. Run: `.venv/bin/python bench/number_parsing.py`.
This is a measurement, not a test: it never asserts.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import phonenumbers
from phonenumbers import PhoneNumberType

from ivrcast.numbers import NATIONS, InvalidNumber, Nation, parse_destnumbers
from ivrcast.numbers.fastpath import fast_parser
from ivrcast.numbers.normalize import parse_with_phonenumbers

COUNT = 5000
ROUNDS = 7


def realistic_numbers(nation: Nation, rng: random.Random) -> list[str]:
    """`COUNT` numbers: 80% mobile, randomised subscriber digits, mixed shapes.

    "National" numbers carry the prefix locals write before that kind of number (taken
    from phonenumbers' national format: `0` for an Indonesian mobile, none for a
    Colombian one), so the share of invalid numbers stays that of the truncated pastes.
    """
    bases = []
    for number_type in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
        example = phonenumbers.example_number_for_type(nation.region, number_type)
        assert example is not None
        nsn = phonenumbers.national_significant_number(example)
        national = phonenumbers.normalize_digits_only(
            phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        )
        bases.append((national.removesuffix(nsn), nsn))
    numbers = []
    for _ in range(COUNT):
        trunk, base = bases[0] if rng.random() < 0.8 else bases[1]
        nsn = base[:-6] + "".join(rng.choice("0123456789") for _ in range(6))
        if rng.random() < 0.03:
            nsn = nsn[: rng.randrange(2, len(nsn))]  # a truncated paste
        shape = rng.random()
        if shape < 0.45:
            numbers.append(trunk + nsn)
        elif shape < 0.75:
            numbers.append(f"+{nation.calling_code}{nsn}")
        elif shape < 0.9:
            numbers.append(f"{nation.calling_code}{nsn}")
        else:
            numbers.append(nsn)
    return numbers


def median_seconds(work: Callable[[], object]) -> float:
    timings = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def full_path(items: list[str], nation: Nation) -> int:
    accepted = 0
    for item in items:
        try:
            parse_with_phonenumbers(item, nation)
        except InvalidNumber:
            continue
        accepted += 1
    return accepted


def main() -> None:
    rng = random.Random(20240601)
    print(f"{COUNT} numbers per nation, median of {ROUNDS} rounds")
    header = (
        f"{'nation':<7}{'valid':>7}{'common':>8}{'common µs/n':>13}{'fast µs/n':>11}"
        f"{'full µs/n':>11}{'ratio':>8}{'request ms':>12}{'clean ms':>10}"
    )
    print(header)
    fast_total = full_total = 0.0
    for nation in NATIONS.values():
        items = realistic_numbers(nation, rng)
        raw = ", ".join(items)
        parser = fast_parser(nation.region)
        parse_destnumbers(raw, nation)  # compile the nation's patterns outside the timing
        taken = [item for item in items if parser.common_shapes.fullmatch(item)]
        common_items = list(dict.fromkeys(taken))
        common = median_seconds(lambda: list(map(parser.common_shapes.fullmatch, items)))  # noqa: B023
        clean_raw = ",".join(common_items)
        clean = median_seconds(lambda: parse_destnumbers(clean_raw, nation))  # noqa: B023
        fast = median_seconds(lambda: [parser.normalize(item) for item in items])  # noqa: B023
        full = median_seconds(lambda: full_path(items, nation))  # noqa: B023
        request = median_seconds(lambda: parse_destnumbers(raw, nation))  # noqa: B023
        valid = full_path(items, nation)
        fast_total += fast
        full_total += full
        print(
            f"{nation.code:<7}{valid / COUNT:>7.1%}{len(taken) / COUNT:>8.1%}"
            f"{common / COUNT * 1e6:>13.2f}{fast / COUNT * 1e6:>11.2f}"
            f"{full / COUNT * 1e6:>11.2f}{full / fast:>7.1f}x{request * 1e3:>12.2f}"
            f"{clean * 1e3:>10.2f}"
        )
    per_number = len(NATIONS) * COUNT
    print(
        f"{'all':<7}{'':>28}{fast_total / per_number * 1e6:>11.2f}"
        f"{full_total / per_number * 1e6:>11.2f}{full_total / fast_total:>7.1f}x"
    )


if __name__ == "__main__":
    main()
