"""Log output: the ids in `extra` on every line, as key=value or JSON, levels per logger."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrcast.config import LoggingSettings, load_settings
from ivrcast.errors import ConfigError
from ivrcast.logs import configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back for the next test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    touched = ["ivrcast.sip", "ivrcast.dialer", "ivrcast.api"]
    levels = {name: logging.getLogger(name).level for name in touched}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def emit_call_line() -> None:
    logging.getLogger("ivrcast.dialer.loop").info(
        "finished %s, record queued",
        "busy",
        extra={
            "event": "dialer.finished",
            "call_uuid": "c-1",
            "task_id": "t-9",
            "trunk": "id main",
            "node": "n1",
            "attempt": 2,
        },
    )


def test_text_lines_carry_every_extra_as_key_value() -> None:
    out = io.StringIO()
    configure_logging(LoggingSettings(), out)
    emit_call_line()
    line = out.getvalue().strip()
    assert " INFO ivrcast.dialer.loop: finished busy, record queued " in line
    assert line.endswith(
        'event=dialer.finished call_uuid=c-1 task_id=t-9 trunk="id main" node=n1 attempt=2'
    )


def test_json_lines_parse_and_carry_every_extra() -> None:
    out = io.StringIO()
    configure_logging(LoggingSettings(format="json"), out)
    emit_call_line()
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("ivrcast.api").exception("failed", extra={"event": "api.failed"})
    first, second = (json.loads(line) for line in out.getvalue().splitlines() if line[:1] == "{")
    assert first["message"] == "finished busy, record queued"
    assert first["level"] == "INFO"
    assert first["logger"] == "ivrcast.dialer.loop"
    assert {k: first[k] for k in ("event", "call_uuid", "task_id", "trunk", "node", "attempt")} == {
        "event": "dialer.finished",
        "call_uuid": "c-1",
        "task_id": "t-9",
        "trunk": "id main",
        "node": "n1",
        "attempt": 2,
    }
    assert second["event"] == "api.failed"
    assert "ValueError: boom" in second["exc_info"]


def test_levels_per_logger() -> None:
    out = io.StringIO()
    configure_logging(LoggingSettings(level="WARNING", levels={"ivrcast.sip": "DEBUG"}), out)
    logging.getLogger("ivrcast.sip.call").debug("sip detail", extra={"event": "sip.x"})
    logging.getLogger("ivrcast.dialer.loop").info("dialer info", extra={"event": "d.x"})
    logging.getLogger("ivrcast.dialer.loop").warning("dialer warning", extra={"event": "d.y"})
    text = out.getvalue()
    assert "sip detail" in text
    assert "dialer info" not in text
    assert "dialer warning" in text


def test_logging_settings_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "ivrcast.toml"
    path.write_text(
        '[logging]\nformat = "json"\nlevel = "info"\n[logging.levels]\n"ivrcast.sip" = "DEBUG"\n'
    )
    settings = load_settings(path, {})
    assert settings.logging == LoggingSettings(
        format="json", level="INFO", levels={"ivrcast.sip": "DEBUG"}
    )
    path.write_text('[logging]\nlevel = "LOUD"\n')
    with pytest.raises(ConfigError, match=r"logging\.level"):
        load_settings(path, {})
