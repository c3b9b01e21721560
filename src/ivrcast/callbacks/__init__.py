"""Call records: the payload pushed to the customer, its signature, its delivery."""

from __future__ import annotations
