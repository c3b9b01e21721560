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
