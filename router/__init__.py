"""incident-router: alerts in, classified and deduplicated incidents and notifications out."""

from __future__ import annotations

__version__ = "0.1.0"
