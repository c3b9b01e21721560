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

POSTGRES_ADMIN = os.environ.get(
    "IVRCAST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(POSTGRES_ADMIN, autocommit=True)


def _url_for(name: str) -> str:
    base = POSTGRES_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated database to clone; dropped when the session ends."""
    name = f"ivrcast_tpl_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(_url_for(name))
    upgrade_to_head(db)
    db.dispose()
    yield name
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'ivrcast.db'}"


def _cloned_postgres(template: str) -> Iterator[str]:
    name = f"ivrcast_t_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _url_for(name)
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database for one test."""
    yield from _cloned_postgres(request.getfixturevalue("postgres_template"))


@pytest.fixture
def other_postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A second fresh, migrated PostgreSQL database, for tests that compare two."""
    yield from _cloned_postgres(request.getfixturevalue("postgres_template"))


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each engine."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        db = Database(url)
        upgrade_to_head(db)
        db.dispose()
        return url
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()
