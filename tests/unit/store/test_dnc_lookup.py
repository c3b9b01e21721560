"""A submission's numbers checked against the do-not-call lists, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime

from factories import add_account
from ivrcast.store import dnc
from ivrcast.store.engine import Database

NOW = datetime(2025, 3, 10, 3, 0, tzinfo=UTC)


def test_a_whole_submission_is_checked_against_the_account_s_and_the_global_list(
    database: Database,
) -> None:
    numbers = [f"+6281200{n:05d}" for n in range(5000)]
    with database.write() as conn:
        acme, other = (add_account(conn, appid, now=NOW).id for appid in ("acme", "other"))
        dnc.add_numbers(conn, acme, [numbers[0], numbers[4999]], now=NOW)
        dnc.add_numbers(conn, dnc.GLOBAL, [numbers[2500], "+6281399999999"], now=NOW)
        dnc.add_numbers(conn, other, [numbers[1000]], now=NOW)
    with database.read() as conn:
        assert dnc.listed(conn, acme, numbers) == {numbers[0], numbers[2500], numbers[4999]}
        assert dnc.listed(conn, other, numbers) == {numbers[1000], numbers[2500]}
        assert dnc.listed(conn, acme, []) == set()


def test_with_both_lists_empty_nothing_is_listed_until_either_holds_a_number(
    database: Database,
) -> None:
    """The lookup is skipped while both lists are empty; a number put on either list
    must be found by the very next check."""
    numbers = [f"+6281200{n:05d}" for n in range(3000)]
    with database.write() as conn:
        acme, other = (add_account(conn, appid, now=NOW).id for appid in ("acme", "other"))
        dnc.add_numbers(conn, other, [numbers[7]], now=NOW)
        assert dnc.listed(conn, acme, numbers) == set()
        dnc.add_numbers(conn, acme, [numbers[2999]], now=NOW)
        assert dnc.listed(conn, acme, numbers) == {numbers[2999]}
    with database.write() as conn:
        third = add_account(conn, "third", now=NOW).id
        assert dnc.listed(conn, third, numbers) == set()
        dnc.add_numbers(conn, dnc.GLOBAL, [numbers[1500]], now=NOW)
        assert dnc.listed(conn, third, numbers) == {numbers[1500]}
