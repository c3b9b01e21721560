"""Opening the database, and the two kinds of transaction the rest of the store uses.

SQLite runs in WAL mode with a busy timeout. Its default deferred transactions upgrade
their lock on the first write and can then fail with "database is locked" instead of
waiting, so every transaction that will write starts with `BEGIN IMMEDIATE`
(`Database.write()`); reads use a plain deferred transaction (`Database.read()`).

`Connection` is the handle of one such transaction as the other layers name it: they
hold it and pass it to store functions, and never write SQL with it (only `store/`
imports SQLAlchemy; an import-linter contract keeps it so).

`LoopWriter` runs the same store functions in write transactions for code on an event
loop that writes often (the callback sender), without a worker thread on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy.exc
from sqlalchemy import Connection as Connection
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ivrcast.errors import StoreError
from ivrcast.private_files import private_dir, private_file, restrict
from ivrcast.store.outbox_wakeup import announce, take_due_mark

_IMMEDIATE = "ivrcast_immediate"
T = TypeVar("T")


class DatabaseUnavailable(StoreError):
    """The database cannot be reached."""


class IntegrityViolation(StoreError):
    """The change would break a rule the database enforces."""


def normalise_url(url: str) -> str:
    """Pick the drivers ivrcast ships with (psycopg 3) when the URL names none."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One engine and the transaction helpers built on it."""

    def __init__(
        self, url: str, *, echo: bool = False, background_checkpoints: bool = False
    ) -> None:
        """`background_checkpoints`: on SQLite, commits never copy the WAL back into the
        database file (the copy fsyncs, and a 5000-call submission would pay for it); the
        owner calls `checkpoint()` from a background thread instead."""
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        options: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = make_url(self.url).database
            if database and database != ":memory:":
                _private_sqlite_files(Path(database))
            options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            options["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **options)
        self.background_checkpoints = background_checkpoints and self.dialect == "sqlite"
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine, autocheckpoint=not self.background_checkpoints)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads."""
        with translate_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes: committed on success, rolled back on error. Once
        committed, a transaction that made outbox rows due wakes the callback senders
        (`store.outbox_wakeup`)."""
        with (
            translate_errors(),
            self.engine.connect().execution_options(**{_IMMEDIATE: True}) as conn,
        ):
            try:
                with conn.begin():
                    yield conn
            finally:
                due = take_due_mark(conn)
            if due:
                announce(self.url)

    @contextlib.contextmanager
    def schema_change(self) -> Iterator[Connection]:
        """`write()` for migrations. On SQLite, with foreign keys off until the commit,
        then checked: an Alembic batch migration rebuilds a table (copy, drop, rename),
        and dropping a table other rows refer to fails while they are on, deferred or not.
        SQLite only obeys the switch outside a transaction, so it is flipped before BEGIN.
        """
        if self.dialect != "sqlite":
            with self.write() as conn:
                yield conn
            return
        with (
            translate_errors(),
            self.engine.connect().execution_options(**{_IMMEDIATE: True}) as conn,
        ):
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    yield conn
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise IntegrityViolation(
                            f"the migration leaves rows referring to nothing: {broken[:5]}"
                        )
            finally:
                raw.execute("PRAGMA foreign_keys=ON")

    def checkpoint(self) -> None:
        """Copy committed WAL frames into the SQLite database file without blocking
        readers or writers (a PASSIVE checkpoint). Blocking: call it in a thread."""
        # Outside any transaction, which a checkpoint cannot run inside: the raw
        # connection is in autocommit mode (see `_install_sqlite_hooks`).
        with translate_errors(), contextlib.closing(self.engine.raw_connection()) as raw:
            raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()

    def dispose(self) -> None:
        self.engine.dispose()


def _private_sqlite_files(path: Path) -> None:
    """The database file is created 0600 before SQLite opens it: SQLite gives its `-wal`
    and `-shm` files the database file's permissions. Existing ones are tightened."""
    if not path.parent.exists():
        private_dir(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm"):
        restrict(path.with_name(path.name + suffix))


def _install_sqlite_hooks(engine: Engine, *, autocheckpoint: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, so BEGIN is ours.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn SQLAlchemy's exceptions into the store's own, at the boundary."""
    try:
        yield
    except sqlalchemy.exc.IntegrityError as exc:
        raise IntegrityViolation(f"integrity violation: {exc.orig}") from exc
    except sqlalchemy.exc.OperationalError as exc:
        raise DatabaseUnavailable(f"database error: {exc.orig}") from exc
    except sqlalchemy.exc.DBAPIError as exc:
        raise StoreError(f"database error: {exc.orig}") from exc


class LoopWriter:
    """Write transactions for an event loop: `await writer.run(fn, *args)` runs `fn(conn,
    *args)` in one, committed when `fn` returns.

    On PostgreSQL it runs on the loop itself, through psycopg's async driver on an engine
    of its own: a worker thread would wait for the GIL after every round trip while the
    loop is busy (up to the interpreter's 5 ms switch interval each, several per
    transaction), which measured as most of the callback sender's time. That engine does
    not ping a connection before each transaction: a connection the server dropped fails
    its transaction, which is discarded with the connection, and the caller's next
    transaction gets a new one. On SQLite `fn` runs in a worker thread through
    `Database.write()`: its `BEGIN IMMEDIATE` may wait for another writer, which must not
    stop the loop.

    `aclose()` closes the PostgreSQL connections; call it on the loop that used them.
    """

    def __init__(self, db: Database, *, connections: int = 1) -> None:
        self._db = db
        self._engine: AsyncEngine | None = None
        if db.dialect == "postgresql":
            self._engine = create_async_engine(
                db.url, pool_size=connections, max_overflow=connections
            )

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        if self._engine is None:
            return await asyncio.to_thread(self._in_thread, fn, *args)
        with translate_errors():
            async with self._engine.begin() as conn:
                result, due = await conn.run_sync(_taking_due_mark, fn, *args)
        if due:
            announce(self._db.url)
        return result

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        with self._db.write() as conn:
            return fn(conn, *args)


def _taking_due_mark(conn: Connection, fn: Callable[..., T], /, *args: Any) -> tuple[T, bool]:
    """`fn(conn, *args)`, and whether it made outbox rows due (see `outbox_wakeup`)."""
    try:
        result = fn(conn, *args)
    finally:
        due = take_due_mark(conn)
    return result, due
