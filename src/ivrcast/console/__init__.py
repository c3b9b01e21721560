"""The web console: pages for customers and operators."""

from __future__ import annotations
