"""One module per operation; each is called by both `/api/yunhu` and REST `/v1`."""

from __future__ import annotations
