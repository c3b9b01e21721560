"""Inserting many rows without paying SQLAlchemy's per-row parameter processing.

A 5000-number submission writes 5000 call rows. Through `Connection.execute(insert, rows)`
SQLAlchemy builds and processes a parameter dictionary per row, which costs more than
the database's own work (see `bench/ingest.py`). Here values that are the same on every
row are converted once with the column type's own bind processor, and the rows are
handed to the driver as plain tuples, so types and dialects stay SQLAlchemy's business:

* on PostgreSQL (psycopg) through `COPY ... FROM STDIN (FORMAT BINARY)`: psycopg's
  `executemany` sends one INSERT per row, and costs more than twice the COPY. The COPY
  runs on the SQLAlchemy connection's own driver connection, inside its transaction, so
  the rows commit or roll back with everything else. Binary rather than text saves the
  server parsing every value (about a tenth of the COPY); each value is dumped by psycopg
  for the column's own type, named from the SQLAlchemy column, so a value that does not
  fit fails the COPY rather than being cast. Both paths write the same rows
  (`tests/unit/store/test_bulk_copy.py`);
* elsewhere (SQLite) through the driver's `executemany` of one INSERT that SQLAlchemy
  compiled for the connection's dialect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table


def insert_rows(
    conn: Connection,
    table: Table,
    *,
    constant: Mapping[str, Any],
    varying: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Insert `rows` (values of the `varying` columns, already in the driver's form: str,
    int or None) with the `constant` columns' values on every row."""
    insert = copy_rows if streams_rows(conn.dialect) else execute_rows
    insert(conn, table, constant=constant, varying=varying, rows=rows)


def streams_rows(dialect: Dialect) -> bool:
    """Whether `insert_rows` sends rows to the server as it takes them (PostgreSQL's
    COPY), so that making the next rows overlaps the server's work on the last ones;
    elsewhere it gathers them all first, and making them lazily only adds overhead."""
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def execute_rows(
    conn: Connection,
    table: Table,
    *,
    constant: Mapping[str, Any],
    varying: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """`insert_rows` through one compiled INSERT and the driver's `executemany`."""
    dialect = conn.dialect
    fixed = {name: _driver_value(table, name, value, dialect) for name, value in constant.items()}
    compiled = table.insert().compile(dialect=dialect, column_keys=[*varying, *fixed])
    if compiled.positional:
        # Each placeholder takes either a varying value (its index in a row) or a fixed one.
        slots: list[tuple[int | None, Any]] = [
            (varying.index(key), None) if key in varying else (None, fixed[key])
            for key in compiled.positiontup or ()
        ]
        params: list[Any] = [
            tuple(row[index] if index is not None else value for index, value in slots)
            for row in rows
        ]
    else:
        params = [{**fixed, **dict(zip(varying, row, strict=True))} for row in rows]
    if params:
        conn.exec_driver_sql(compiled.string, params)


def copy_rows(
    conn: Connection,
    table: Table,
    *,
    constant: Mapping[str, Any],
    varying: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """`insert_rows` through psycopg's `COPY ... FROM STDIN` (PostgreSQL only)."""
    dialect = conn.dialect
    fixed = tuple(_driver_value(table, name, value, dialect) for name, value in constant.items())
    names = (*varying, *constant)
    preparer = dialect.identifier_preparer
    columns = ", ".join(preparer.quote(name) for name in names)
    statement = f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN (FORMAT BINARY)"
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types([_type_name(table, name, dialect) for name in names])
        for row in rows:
            copy.write_row((*row, *fixed))


def _type_name(table: Table, name: str, dialect: Any) -> str:
    """The column's type as psycopg's registry names it: `VARCHAR(36)` -> `varchar`."""
    return re.sub(r"\(.*\)", "", table.c[name].type.compile(dialect)).strip().lower()


def _driver_value(table: Table, name: str, value: Any, dialect: Any) -> Any:
    processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    return processor(value) if processor is not None else value
