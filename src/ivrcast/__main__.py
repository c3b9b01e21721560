"""`python -m ivrcast`: the same as the `ivrcast` command."""

from __future__ import annotations

from ivrcast.cli import main

main()
