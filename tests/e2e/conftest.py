"""Fixtures of the end-to-end tests (the helpers live in `e2e_server`)."""

from __future__ import annotations

from e2e_server import api_server, callback_receiver

__all__ = ["api_server", "callback_receiver"]
