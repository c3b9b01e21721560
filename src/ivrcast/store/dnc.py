"""Do-not-call lists: per account, and the operator's global list (`GLOBAL`).

Numbers are kept in E.164 with `+`, the form call rows hold, so a number matches
whatever form it was written in. Two checks use them: PlayVoice does not queue a listed
number (`listed`), and the claim ends a call whose number was listed after it was queued
`suppressed` before any INVITE (`transitions.claim_due_calls`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, any_, exists, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from ivrcast.store.tables import dnc

GLOBAL = 0
"""The `account_id` of the operator's list, which applies to every account."""

CHUNK = 1000  # numbers per statement: well under every driver's parameter limit


@dataclass(frozen=True)
class DncEntry:
    number: str
    created_at: datetime


def _chunks(numbers: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(numbers), CHUNK):
        yield numbers[start : start + CHUNK]


def add_numbers(conn: Connection, list_id: int, numbers: Sequence[str], *, now: datetime) -> int:
    """Put E.164 `numbers` on list `list_id` (an account's id or `GLOBAL`); numbers
    already there stay as they were. Returns how many were added."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    added = 0
    for chunk in _chunks(list(dict.fromkeys(numbers))):
        # RETURNING counts the rows inserted: an executemany's rowcount is not reliable.
        result = conn.execute(
            insert(dnc).on_conflict_do_nothing().returning(dnc.c.number),
            [{"account_id": list_id, "number": n, "created_at": now} for n in chunk],
        )
        added += len(result.all())
    return added


def refresh_statistics(conn: Connection) -> None:
    """Let the planner know the list's size after a large import: with the statistics of
    an empty table, PostgreSQL plans the lookups of a million-number list badly until
    autovacuum comes by."""
    conn.execute(text("ANALYZE dnc"))


def remove_numbers(conn: Connection, list_id: int, numbers: Sequence[str]) -> int:
    removed = 0
    for chunk in _chunks(list(dict.fromkeys(numbers))):
        result = conn.execute(
            dnc.delete().where(dnc.c.account_id == list_id, dnc.c.number.in_(list(chunk)))
        )
        removed += result.rowcount
    return removed


def list_numbers(
    conn: Connection, list_id: int, *, limit: int, after: str | None = None
) -> list[DncEntry]:
    """A page of the list in number order, after the number `after` (the cursor)."""
    query = (
        select(dnc.c.number, dnc.c.created_at)
        .where(dnc.c.account_id == list_id)
        .order_by(dnc.c.number)
        .limit(limit)
    )
    if after is not None:
        query = query.where(dnc.c.number > after)
    return [DncEntry(number, created_at) for number, created_at in conn.execute(query)]


def count_numbers(conn: Connection, list_id: int) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(dnc).where(dnc.c.account_id == list_id)
        ).scalar_one()
    )


def any_listed(conn: Connection, account_id: int) -> bool:
    """Whether the account's list or the global one holds any number (one probe of the
    primary key): when neither does, no number needs looking up."""
    on_a_list = dnc.c.account_id.in_((GLOBAL, account_id))
    return bool(conn.execute(select(exists().where(on_a_list))).scalar())


def listed(conn: Connection, account_id: int, numbers: Sequence[str]) -> set[str]:
    """Which of E.164 `numbers` the account may not call: on its list or the global one.
    Each chunk is a lookup by primary key, so a 5000-number submission costs the same
    against a list of a million numbers as against an empty one. Most accounts have no
    list and the global one is empty, so the numbers are only looked up when either
    list holds a number at all (one probe of the primary key)."""
    on_a_list = dnc.c.account_id.in_((GLOBAL, account_id))
    if conn.dialect.name == "postgresql":
        # The numbers as one parameter, split by the server: as chunks of IN lists, the
        # thousand parameters of each took longer to send and plan than the lookups
        # (50-65 ms of a 5000-number submission, against 7-10 ms as an array), and even
        # an array parameter costs psycopg a regular-expression match per number.
        # E.164 numbers hold no comma. The EXISTS is uncorrelated, so the server runs
        # it once as a one-time filter and, when both lists are empty, neither splits
        # nor looks up the numbers (0.1-0.2 ms instead of 3-5 ms).
        every = func.string_to_array(",".join(numbers), ",")
        either = dnc.alias("either_list")
        either_holds = exists().where(either.c.account_id.in_((GLOBAL, account_id)))
        query = select(dnc.c.number).where(either_holds, on_a_list, dnc.c.number == any_(every))
        return set(conn.execute(query).scalars())
    found: set[str] = set()
    if not numbers or not any_listed(conn, account_id):
        return found
    for chunk in _chunks(numbers):
        found.update(
            conn.execute(
                select(dnc.c.number).where(on_a_list, dnc.c.number.in_(list(chunk)))
            ).scalars()
        )
    return found
