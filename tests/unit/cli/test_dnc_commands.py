"""`ivrcast dnc add|remove|import|export`, on the configured database."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ivrcast.cli import app
from ivrcast.config import load_settings
from ivrcast.store import dnc
from ivrcast.store.accounts import create_account
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ivrcast.toml"
    path.write_text(f'data_dir = "{(tmp_path / "var").as_posix()}"\n')
    return path


def database(config: Path) -> Database:
    db = Database(load_settings(config).database_url)
    upgrade_to_head(db)
    return db


def run(config: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(
        app, [*args, "--config", str(config)], env={"COLUMNS": "300"}, catch_exceptions=False
    )
    assert result.exit_code == code, result.output
    return result.output


def listed(db: Database, list_id: int) -> list[str]:
    with db.read() as conn:
        return [e.number for e in dnc.list_numbers(conn, list_id, limit=1_000_000)]


def test_add_remove_and_the_choice_of_list(config: Path) -> None:
    db = database(config)
    with db.write() as conn:
        acme = create_account(conn, appid="acme", accesskey_hash="0" * 64, now=datetime.now(UTC))
    assert "2 added, 1 invalid" in run(
        config, "dnc", "add", "081234567890", "+62 812-3456-7891", "12", "--nation", "id",
        "--appid", "acme",
    )  # fmt: skip
    run(config, "dnc", "add", "081234567892", "--nation", "id", "--global")
    assert "1 removed" in run(
        config, "dnc", "remove", "6281234567891", "--nation", "id", "--appid", "acme"
    )
    assert listed(db, acme.id) == ["+6281234567890"]
    assert listed(db, dnc.GLOBAL) == ["+6281234567892"]
    assert "--appid or --global" in run(config, "dnc", "add", "1", "--nation", "id", code=2)
    assert "no account 'nope'" in run(
        config, "dnc", "add", "1", "--nation", "id", "--appid", "nope", code=2
    )


def test_import_streams_a_large_csv_and_export_writes_it_back(config: Path, tmp_path: Path) -> None:
    database(config)  # migrated, as `ivrcast migrate` would
    numbers = [f"0812{n:08d}" for n in range(12_345)]
    source = tmp_path / "dnc.csv"
    source.write_text("phone\n" + "\n".join(numbers) + "\n")
    assert "12345 added, 0 invalid" in run(
        config, "dnc", "import", str(source), "--nation", "id", "--global"
    )
    exported = tmp_path / "out.csv"
    run(config, "dnc", "export", "--global", "--output", str(exported))
    rows = list(csv.reader(io.StringIO(exported.read_text())))
    assert rows[0] == ["number", "created_at"]
    assert [row[0] for row in rows[1:]] == sorted("+62" + n[1:] for n in numbers)
