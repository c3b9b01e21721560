"""A recording's file: `<dir>/<call uuid>.wav`, one flat folder (0700), and the sweep
that deletes the ones older than `[recordings] keep_days`."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

logger = logging.getLogger(__name__)

SUFFIX = ".wav"
# Call uuids are ours (store.ids); anything else never names a file, so no path from a
# request can leave the folder.
_CALL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_call_uuid(text: str) -> bool:
    return _CALL_UUID.fullmatch(text) is not None


def recording_path(folder: Path, call_uuid: str) -> Path:
    """The file of the call's recording; ValueError for anything not a call uuid."""
    if not is_call_uuid(call_uuid):
        raise ValueError(f"not a call uuid: {call_uuid!r}")
    return folder / f"{call_uuid}{SUFFIX}"


def sweep_recordings(folder: Path, *, keep_days: int, now: float | None = None) -> int:
    """Delete recordings last written more than `keep_days` ago; returns how many.

    Age is the file's modification time (when the call ended), so the sweep needs no
    database and any node sharing the folder may run it."""
    cutoff = (time.time() if now is None else now) - keep_days * 86400
    removed = 0
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return 0
    for path in entries:
        if path.suffix != SUFFIX or not is_call_uuid(path.stem):
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # another node swept it first
    if removed:
        logger.info(
            "deleted %d recordings older than %d days",
            removed,
            keep_days,
            extra={"event": "recordings.swept", "removed": removed},
        )
    return removed
