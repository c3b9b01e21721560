"""The real peers the interop, e2e and browser tests talk to: SIPp, baresip, php-cli and
chromium (PostgreSQL is the `database` fixture's, in `conftest.py`).

One policy: in `make test` a missing peer is a failure, never a skip, so a machine
without one cannot pass the suite by quietly running less of it. `make install` puts
every peer in place; the message names the Debian package that brings it.
"""

from __future__ import annotations

import shutil

import pytest


def require_executable(name: str, package: str) -> str:
    """The path of the executable `name` (a name on PATH or an absolute path); fails the
    test, naming the Debian `package` to install, when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install {package} (make install does)")
    return path
