"""Scheduling: claim due calls within windows and limits, dial them, record every end.

Entry points: `ivrcast.dialer.service.run_dialer` (a coroutine) and `main` (blocking),
and `python -m ivrcast.dialer --config PATH`.
"""

from __future__ import annotations
