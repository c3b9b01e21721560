"""Log output: one line per record, the ids of `extra` on it, readable or JSON.

Every record carries a stable `event` and the ids of what it is about (`call_uuid`,
`task_id`, `sip_call_id`, `trunk`, `node`) in `extra`. Both formats print them, so one
`grep call_uuid=…` (or a JSON query) follows a call through the API and the dialer:

    2026-11-29T11:20:03.117Z INFO ivrcast.dialer.loop: claimed event=dialer.claimed call_uuid=…
    {"time": "2026-11-29T11:20:03.117Z", "level": "INFO", "logger": "ivrcast.dialer.loop", ...}

`configure_logging(settings.logging)` is called once by each process at start.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from ivrcast.config import LoggingSettings

# Attributes every LogRecord has; whatever else a record carries came from `extra`.
_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
# The ids first, in this order, so lines of one call line up; other extras follow.
_FIRST = ("event", "call_uuid", "task_id", "sip_call_id", "trunk", "node")


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra` fields of a record: ids first, then the rest by name."""
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None}
    ordered = {k: fields.pop(k) for k in _FIRST if k in fields}
    ordered.update(sorted(fields.items()))
    return ordered


def _timestamp(record: logging.LogRecord) -> str:
    at = datetime.fromtimestamp(record.created, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _kv_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' "=\\\n\t'):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value …`; values with spaces or quotes quoted."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        parts = [f"{_timestamp(record)} {record.levelname} {record.name}: {message}"]
        parts += [f"{key}={_kv_value(value)}" for key, value in record_extras(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the extras, and the
    traceback as `exc_info` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(settings: LoggingSettings, stream: TextIO | None = None) -> None:
    """Send every record to `stream` (stderr) in the configured format, at the root's
    level and each named logger's own."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.level)
    for name, level in settings.levels.items():
        logging.getLogger(name).setLevel(level)
