"""The data folder and the database files are the server user's alone.

They hold callback URLs and secrets, callees' numbers and call records: no other local
user may read them, whatever the umask. Existing files and folders are tightened (group
and other bits removed) at start; ones the server user does not own are left with a
warning, since it cannot change them.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) as 0700, or take group/other bits off it."""
    if not path.exists():
        # `mode` only applies to the last component; parents are ordinary folders.
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    restrict(path)


def private_file(path: Path) -> None:
    """Create `path` empty as 0600 if it does not exist, or take group/other bits off it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        restrict(path)
    else:
        os.close(fd)


def restrict(path: Path) -> None:
    """Remove the group and other permission bits of `path`, if it exists."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & ~0o077)
    except FileNotFoundError:
        return
    except PermissionError:
        logger.warning(
            "cannot make %s private (owned by another user)",
            path,
            extra={"event": "file_not_private", "path": str(path)},
        )
