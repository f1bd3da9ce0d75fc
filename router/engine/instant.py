"""The engine's notion of time: one `Instant` per decision, aware UTC datetimes, epoch seconds.

A decision reads `now` both as a datetime (for what people see: timeline entries,
`created_at`) and as float epoch seconds (for deadlines in state). `Instant` carries both, so
every function takes one `now` and no conversion is done twice on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def to_ts(value: datetime) -> float:
    """Epoch seconds of an aware datetime (naive ones are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def from_ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def utc(value: datetime) -> datetime:
    tz = value.tzinfo
    if tz is UTC:
        return value  # the common case, without a copy
    if tz is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso(value: datetime) -> str:
    return utc(value).isoformat()


@dataclass(frozen=True, slots=True)
class Instant:
    """`now` of one decision: `dt` the aware datetime, `ts` its epoch seconds."""

    dt: datetime
    ts: float

    @classmethod
    def of(cls, value: datetime) -> Instant:
        return cls(value, to_ts(value))
