"""`ivrcast account create` takes secrets from files or a hidden prompt as well as from
options, and keeps the callback secret encrypted; `migrate` makes the data private."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ivrcast.cli import app
from ivrcast.config import Settings, load_settings
from ivrcast.credentials import hash_secret, load_secret_key, open_secret
from ivrcast.store.accounts import Account, create_account, find_account
from ivrcast.store.engine import Database


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common umask, under which files are created 0644 unless made private."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ivrcast.toml"
    path.write_text(f'data_dir = "{(tmp_path / "var").as_posix()}"\n')
    return path


def run(config: Path, *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(app, [*args, "--config", str(config)], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def refused(config: Path, *args: str) -> str:
    # Wide enough that rich does not wrap the message inside its box.
    result = CliRunner().invoke(app, [*args, "--config", str(config)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    return result.output


def stored(config: Path, appid: str) -> tuple[Settings, Account]:
    settings = load_settings(config, {})
    db = Database(settings.database_url)
    try:
        with db.read() as conn:
            account = find_account(conn, appid)
    finally:
        db.dispose()
    assert account is not None
    return settings, account


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_from_files_stay_off_the_command_line(config: Path, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("file-accesskey\n")
    (tmp_path / "cb").write_text("file-callback-secret\n")
    run(
        config,
        "account", "create", "--appid", "acme",
        "--accesskey-file", str(tmp_path / "key"),
        "--callback-url", "https://example.com/cb",
        "--callback-secret-file", str(tmp_path / "cb"),
    )  # fmt: skip
    settings, account = stored(config, "acme")
    key = load_secret_key(settings)
    assert account.accesskey_hash == hash_secret(key, "file-accesskey")
    assert account.callback_secret is not None
    assert "file-callback-secret" not in account.callback_secret
    assert open_secret(key, account.callback_secret) == "file-callback-secret"


def test_the_accesskey_is_asked_for_when_not_given(config: Path) -> None:
    output = run(
        config,
        "account", "create", "--appid", "acme", "--prompt-callback-secret",
        stdin="typed-key\ntyped-key\ntyped-secret\ntyped-secret\n",
    )  # fmt: skip
    assert "typed-key" not in output  # hidden input is not echoed
    settings, account = stored(config, "acme")
    key = load_secret_key(settings)
    assert account.accesskey_hash == hash_secret(key, "typed-key")
    assert account.callback_secret is not None
    assert open_secret(key, account.callback_secret) == "typed-secret"


def test_the_options_of_design_md_still_work_and_the_secret_is_encrypted(config: Path) -> None:
    run(
        config,
        "account", "create", "--appid", "acme", "--accesskey", "k",
        "--callback-url", "https://example.com/cb", "--callback-secret", "plain-secret",
    )  # fmt: skip
    settings, account = stored(config, "acme")
    assert account.callback_secret is not None
    assert account.callback_secret.startswith("aesgcm1:")
    assert "plain-secret" not in account.callback_secret
    assert open_secret(load_secret_key(settings), account.callback_secret) == "plain-secret"


def test_a_secret_given_twice_or_empty_is_refused(config: Path, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k\n")
    (tmp_path / "empty").write_text("\n")
    both = refused(
        config,
        "account", "create", "--appid", "a", "--accesskey", "k",
        "--accesskey-file", str(tmp_path / "key"),
    )  # fmt: skip
    assert "not both" in both
    empty = refused(
        config, "account", "create", "--appid", "a", "--accesskey-file", str(tmp_path / "empty")
    )
    assert "empty" in empty


def test_migrate_makes_the_data_folder_and_database_files_private(config: Path) -> None:
    run(config, "migrate")
    settings = load_settings(config, {})
    database = settings.data_dir / "ivrcast.db"
    assert mode(settings.data_dir) == 0o700
    assert mode(database) == 0o600
    db = Database(settings.database_url)
    try:
        with db.write() as conn:
            create_account(conn, appid="a", accesskey_hash="0" * 64, now=datetime.now(UTC))
        # SQLite keeps the WAL and its index beside the database while a connection is open.
        for suffix in ("-wal", "-shm"):
            assert mode(database.with_name(database.name + suffix)) == 0o600
    finally:
        db.dispose()


def test_migrate_tightens_an_existing_install(config: Path) -> None:
    run(config, "migrate")
    settings = load_settings(config, {})
    database = settings.data_dir / "ivrcast.db"
    settings.data_dir.chmod(0o755)
    database.chmod(0o644)
    run(config, "migrate")
    assert mode(settings.data_dir) == 0o700
    assert mode(database) == 0o600


def test_migrate_encrypts_callback_secrets_stored_in_plaintext(config: Path) -> None:
    run(config, "migrate")
    settings = load_settings(config, {})
    db = Database(settings.database_url)
    try:
        with db.write() as conn:
            create_account(
                conn,
                appid="old",
                accesskey_hash="0" * 64,
                callback_secret="legacy-plaintext",
                now=datetime.now(UTC),
            )
    finally:
        db.dispose()
    run(config, "migrate")
    _, account = stored(config, "old")
    assert account.callback_secret is not None
    assert account.callback_secret.startswith("aesgcm1:")
    assert open_secret(load_secret_key(settings), account.callback_secret) == "legacy-plaintext"
