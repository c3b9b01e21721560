"""Inserting many rows without paying SQLAlchemy's per-row parameter processing.

A 5000-number submission writes 5000 call rows. Through `Connection.execute(insert, rows)`
SQLAlchemy builds and processes a parameter dictionary per row, which costs more than
the database's own work (see `bench/ingest.py`). Here the statement is compiled once by
SQLAlchemy for the connection's dialect, values that are the same on every row are
converted once with the column type's own bind processor, and the rows go to the
driver's `executemany` as plain tuples, so types and dialects stay SQLAlchemy's business.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table


def insert_rows(
    conn: Connection,
    table: Table,
    *,
    constant: Mapping[str, Any],
    varying: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Insert `rows` (values of the `varying` columns, already in the driver's form: str
    and int) with the `constant` columns' values on every row."""
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


def _driver_value(table: Table, name: str, value: Any, dialect: Any) -> Any:
    processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    return processor(value) if processor is not None else value
