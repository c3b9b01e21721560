"""Persistence: SQLAlchemy Core tables, Alembic migrations and one named function per statement."""

from __future__ import annotations
