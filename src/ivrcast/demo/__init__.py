"""The demo carrier: an in-process SIP endpoint for trying ivrcast without a trunk."""

from __future__ import annotations

from ivrcast.demo.carrier import DemoCarrier
from ivrcast.demo.uas import MAGIC, Behaviour, behaviour_for

__all__ = ["MAGIC", "Behaviour", "DemoCarrier", "behaviour_for"]
