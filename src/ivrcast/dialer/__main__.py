"""`python -m ivrcast.dialer [--config PATH]`: the dialer process `ivrcast serve` starts."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ivrcast.config import load_settings
from ivrcast.dialer.service import main
from ivrcast.errors import ConfigError
from ivrcast.logs import configure_logging


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivrcast.dialer")
    parser.add_argument("--config", type=Path, default=None, help="TOML settings file")
    parser.add_argument(
        "--parent-pipe",
        type=int,
        default=None,
        metavar="FD",
        help="read end of a pipe from the parent: stop gracefully at its end-of-file",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"ivrcast dialer: {exc}\n")
        return 2
    configure_logging(settings.logging)
    main(settings, parent_pipe=args.parent_pipe)
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
