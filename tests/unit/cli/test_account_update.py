"""`ivrcast account update`: the settings the console edits, from the command line, checked
the same way; and `account create` refuses what the API could not use."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_account_secrets import refused, run, stored


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ivrcast.toml"
    path.write_text(
        f'data_dir = "{(tmp_path / "var").as_posix()}"\n[callbacks]\ntimezone = "Asia/Jakarta"\n'
    )
    run(path, "account", "create", "--appid", "acme", "--accesskey", "k")
    return path


def test_update_changes_only_the_settings_given(config: Path) -> None:
    out = run(
        config, "account", "update", "--appid", "acme", "--countries", "ID,in",
        "--allowed-ips", "203.0.113.9/24", "--max-concurrency", "7", "--expires", "2027-01-01",
    )  # fmt: skip
    assert "account acme updated: enabled, expires 2026-12-31 17:00:00 UTC" in out
    _, account = stored(config, "acme")
    assert account.countries == ("id", "in")
    assert account.allowed_ips == ("203.0.113.0/24",)
    assert account.max_concurrency == 7
    assert account.expires_at == datetime(2026, 12, 31, 17, 0, tzinfo=UTC)

    run(config, "account", "update", "--appid", "acme", "--disable", "--expires", "never")
    _, account = stored(config, "acme")
    assert account.disabled
    assert account.expires_at is None
    assert account.countries == ("id", "in")  # untouched
    run(config, "account", "update", "--appid", "acme", "--enable", "--allowed-ips", "")
    _, account = stored(config, "acme")
    assert not account.disabled
    assert account.allowed_ips == ()
    listing = run(config, "account", "list")
    assert "acme" in listing
    assert "active" in listing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--allowed-ips", "10.0.0.300"], "'10.0.0.300' is not an IP address or network"),
        (["--countries", "id,zz"], "unknown nation code 'zz'"),
        (["--expires", "next week"], "'next week': give YYYY-MM-DD or never"),
        ([], "give at least one setting to change"),
    ],
)
def test_update_refuses_bad_values_naming_the_option(
    config: Path, args: list[str], message: str
) -> None:
    output = refused(config, "account", "update", "--appid", "acme", *args)
    assert message in output
    option = args[0] if args else "--appid"
    assert option in output


def test_update_of_an_unknown_account_is_refused(config: Path) -> None:
    output = refused(config, "account", "update", "--appid", "nobody", "--disable")
    assert "no account 'nobody'" in output


def test_create_refuses_networks_the_api_could_not_read(config: Path) -> None:
    output = refused(
        config, "account", "create", "--appid", "bad", "--accesskey", "k",
        "--allowed-ips", "203.0.113.0/33",
    )  # fmt: skip
    assert "--allowed-ips" in output
    assert "is not an IP address or network" in output


def test_create_and_update_set_the_playvoice_defaults(config: Path) -> None:
    run(
        config, "account", "create", "--appid", "rec", "--accesskey", "k",
        "--default-retries", "2", "--default-record",
    )  # fmt: skip
    _, account = stored(config, "rec")
    assert (account.default_retries, account.default_record) == (2, True)
    _, untouched = stored(config, "acme")
    assert (untouched.default_retries, untouched.default_record) == (0, False)

    out = run(
        config, "account", "update", "--appid", "rec",
        "--default-retries", "5", "--no-default-record",
    )  # fmt: skip
    assert "PlayVoice defaults: retries 5, record no" in out
    _, account = stored(config, "rec")
    assert (account.default_retries, account.default_record) == (5, False)

    run(config, "account", "update", "--appid", "rec", "--default-record")
    _, account = stored(config, "rec")
    assert (account.default_retries, account.default_record) == (5, True)  # retries untouched


@pytest.mark.parametrize("command", ["create", "update"])
def test_default_retries_out_of_range_is_refused_naming_the_option(
    config: Path, command: str
) -> None:
    extra = ["--accesskey", "k"] if command == "create" else []
    appid = "other" if command == "create" else "acme"
    output = refused(config, "account", command, "--appid", appid, *extra, "--default-retries", "6")
    assert "--default-retries" in output
    assert "must be 0 to 5, got 6" in output
