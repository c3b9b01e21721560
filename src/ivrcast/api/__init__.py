"""HTTP: the /api/yunhu dispatcher, REST /v1, and the error-to-code table."""

from __future__ import annotations
