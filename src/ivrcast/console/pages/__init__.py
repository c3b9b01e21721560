"""The console's pages, one module per section of the navigation."""

from __future__ import annotations
