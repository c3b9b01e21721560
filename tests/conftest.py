"""Fixtures shared by every test package: databases on SQLite and PostgreSQL.

`database` is parametrised over both engines, so a store test written once runs on
each. PostgreSQL tests get a database of their own, cloned from a template migrated
once per session, so tests (and concurrent test runs) never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head
from postgres_server import postgres_admin_url

ADMIN_URL = pytest.StashKey[str]()
SOURCE = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def postgres_admin(request: pytest.FixtureRequest) -> Iterator[str]:
    """The admin URL of the PostgreSQL server the tests use (`postgres_server` decides:
    IVRCAST_TEST_POSTGRES, else 127.0.0.1:5432 if it answers, else a throwaway cluster)."""
    with postgres_admin_url(dict(os.environ)) as (url, source):
        request.config.stash[ADMIN_URL] = url
        request.config.stash[SOURCE] = source
        yield url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    source = terminalreporter.config.stash.get(SOURCE, None)
    if source is not None:
        terminalreporter.write_line(f"PostgreSQL: {source}")


def _admin(admin_url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(admin_url, autocommit=True)


def _url_for(admin_url: str, name: str) -> str:
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_template(postgres_admin: str) -> Iterator[str]:
    """A migrated database to clone; dropped when the session ends."""
    name = f"ivrcast_tpl_{uuid.uuid4().hex[:12]}"
    with _admin(postgres_admin) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(_url_for(postgres_admin, name))
    upgrade_to_head(db)
    db.dispose()
    yield name
    with _admin(postgres_admin) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'ivrcast.db'}"


def _cloned_postgres(admin_url: str, template: str) -> Iterator[str]:
    name = f"ivrcast_t_{uuid.uuid4().hex[:12]}"
    with _admin(admin_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _url_for(admin_url, name)
    with _admin(admin_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database for one test."""
    yield from _cloned_postgres(
        request.getfixturevalue("postgres_admin"), request.getfixturevalue("postgres_template")
    )


@pytest.fixture
def other_postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A second fresh, migrated PostgreSQL database, for tests that compare two."""
    yield from _cloned_postgres(
        request.getfixturevalue("postgres_admin"), request.getfixturevalue("postgres_template")
    )


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each engine."""
    if request.param == "sqlite":
        sqlite = sqlite_url(tmp_path)
        db = Database(sqlite)
        upgrade_to_head(db)
        db.dispose()
        return sqlite
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()
