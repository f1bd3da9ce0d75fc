"""The decision engine: pure `decide` over per-group state, and the in-memory `Engine`."""

from __future__ import annotations

from router.engine.decide import Decision, Event, decide, severity_of
from router.engine.engine import Batch, Engine, event_group_key
from router.engine.ids import IDS_KEY, IncidentIds
from router.engine.instant import Instant, from_ts, to_ts
from router.engine.state import (
    AlertState,
    EngineContext,
    GroupState,
    IncidentState,
    Tick,
    default_group_key,
    group_key_of,
)

__all__ = [
    "IDS_KEY",
    "AlertState",
    "Batch",
    "Decision",
    "Engine",
    "EngineContext",
    "Event",
    "GroupState",
    "IncidentIds",
    "IncidentState",
    "Instant",
    "Tick",
    "decide",
    "default_group_key",
    "event_group_key",
    "from_ts",
    "group_key_of",
    "severity_of",
    "to_ts",
]
