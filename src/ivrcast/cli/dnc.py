"""`ivrcast dnc add|remove|import|export`: the do-not-call lists, on the database.

`--appid` names an account's list, `--global` the operator's list that applies to
every account. Numbers are given as `destnumber` takes them, with `--nation` for the
national forms, and kept in E.164. `import` streams a CSV of any size in chunks, one
transaction each, so memory stays flat and a list of millions goes in at once.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from ivrcast.cli.common import ConfigOption, console, errors, open_database, settings_from
from ivrcast.store.engine import Database

CHUNK = 5000

AppidOption = Annotated[str | None, typer.Option(help="The account whose list this is.")]
GlobalOption = Annotated[
    bool, typer.Option("--global", help="The operator's list, for every account.")
]
NationOption = Annotated[
    str, typer.Option(help="Nation code for numbers in national form: in, id, ph...")
]


def _list_id(db: Database, appid: str | None, global_list: bool) -> int:
    from ivrcast.store import accounts, dnc

    if (appid is None) == (not global_list):
        raise typer.BadParameter("give --appid or --global, one of them", param_hint="--appid")
    if appid is None:
        return dnc.GLOBAL
    with db.read() as conn:
        account = accounts.find_account(conn, appid)
    if account is None:
        raise typer.BadParameter(f"no account {appid!r}", param_hint="--appid")
    return account.id


def _apply(
    db: Database, list_id: int, nation_code: str, numbers: Iterable[str], *, remove: bool
) -> tuple[int, int]:
    """Add (or remove) `numbers` chunk by chunk; returns (changed, invalid)."""
    from ivrcast.clock import SystemClock
    from ivrcast.numbers import get_nation, parse_destnumbers
    from ivrcast.store import dnc
    from ivrcast.submit import chunks

    nation = get_nation(nation_code.lower())
    changed = invalid = 0
    for chunk in chunks(numbers, CHUNK):
        parsed = parse_destnumbers(",".join(chunk), nation, limit=CHUNK)
        for entry in parsed.invalid:
            errors.print(f"invalid: {entry.number} ({entry.reason})", highlight=False)
        invalid += len(parsed.invalid)
        with db.write() as conn:
            if remove:
                changed += dnc.remove_numbers(conn, list_id, parsed.valid)
            else:
                changed += dnc.add_numbers(conn, list_id, parsed.valid, now=SystemClock().now())
    return changed, invalid


def dnc_add(
    numbers: Annotated[list[str], typer.Argument(help="Numbers to list.")],
    nation: NationOption,
    appid: AppidOption = None,
    global_list: GlobalOption = False,
    config: ConfigOption = None,
) -> None:
    """Put numbers on a do-not-call list."""
    db = open_database(settings_from(config))
    added, invalid = _apply(db, _list_id(db, appid, global_list), nation, numbers, remove=False)
    console.print(f"{added} added, {invalid} invalid")


def dnc_remove(
    numbers: Annotated[list[str], typer.Argument(help="Numbers to take off.")],
    nation: NationOption,
    appid: AppidOption = None,
    global_list: GlobalOption = False,
    config: ConfigOption = None,
) -> None:
    """Take numbers off a do-not-call list."""
    db = open_database(settings_from(config))
    removed, invalid = _apply(db, _list_id(db, appid, global_list), nation, numbers, remove=True)
    console.print(f"{removed} removed, {invalid} invalid")


def dnc_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV of numbers.")],
    nation: NationOption,
    appid: AppidOption = None,
    global_list: GlobalOption = False,
    config: ConfigOption = None,
) -> None:
    """Add every number of a CSV (first cell of each row; a header row is skipped)."""
    from ivrcast.store import dnc
    from ivrcast.submit import open_numbers, read_numbers

    db = open_database(settings_from(config))
    list_id = _list_id(db, appid, global_list)
    with open_numbers(file) as lines:
        added, invalid = _apply(db, list_id, nation, read_numbers(lines), remove=False)
    with db.write() as conn:
        dnc.refresh_statistics(conn)
    console.print(f"{added} added, {invalid} invalid")


def dnc_export(
    appid: AppidOption = None,
    global_list: GlobalOption = False,
    config: ConfigOption = None,
    output: Annotated[
        Path | None, typer.Option(help="CSV file (default: standard output).")
    ] = None,
) -> None:
    """Write a list as CSV (`number,created_at`), page by page."""
    from ivrcast.store import dnc

    db = open_database(settings_from(config))
    list_id = _list_id(db, appid, global_list)
    out = output.open("w", newline="") if output else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(["number", "created_at"])
        after: str | None = None
        while True:
            with db.read() as conn:
                page = dnc.list_numbers(conn, list_id, limit=CHUNK, after=after)
            writer.writerows((entry.number, entry.created_at.isoformat()) for entry in page)
            if len(page) < CHUNK:
                break
            after = page[-1].number
    finally:
        if output:
            out.close()
