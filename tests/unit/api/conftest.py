"""Fixtures of the API tests (the helpers live in `api_service`)."""

from __future__ import annotations

from api_service import make_settings, service, sqlite_service

__all__ = ["make_settings", "service", "sqlite_service"]
