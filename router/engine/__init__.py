"""The decision engine: pure `decide` over per-group state, and the in-memory `Engine`."""

from __future__ import annotations

from router.engine.decide import Event, decide, severity_of
from router.engine.engine import Batch, Engine, event_group_key
from router.engine.state import (
    AlertState,
    EngineContext,
    GroupState,
    IncidentIds,
    IncidentState,
    Tick,
    default_group_key,
    from_ts,
    group_key_of,
    to_ts,
)

__all__ = [
    "AlertState",
    "Batch",
    "Engine",
    "EngineContext",
    "Event",
    "GroupState",
    "IncidentIds",
    "IncidentState",
    "Tick",
    "decide",
    "default_group_key",
    "event_group_key",
    "from_ts",
    "group_key_of",
    "severity_of",
    "to_ts",
]
