"""Local wall-clock time <-> instants for the noise calendars (maintenance windows, business hours).

One rule for every local time a config names, the same as the on-call schedules' (PEP 495
`fold=0`, which is also RFC 5545's rule for DTSTART): a local time that occurs twice on a
fall-back day means its first occurrence; a local time skipped on a spring-forward day is read
with the offset before the gap, so it lands the gap's length later (02:30 in Europe/Berlin on
2026-03-29 is 03:30 CEST).

Instants are aware UTC datetimes throughout: two aware datetimes sharing one ZoneInfo compare and
add on the wall clock (ignoring `fold`), UTC ones do not.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# More than any UTC-offset change a zone makes in one step (real ones are 30 min to 2 h): the slack
# used when a range of instants is searched on the wall clock.
MAX_SHIFT = timedelta(hours=3)


def _not_a_number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            'write a time of day as a quoted string, e.g. "17:00" (unquoted, YAML reads 17:00 '
            "as the number 1020)"
        )
    return value


def _no_offset(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a time of day here is local, without offset, e.g. 09:00")
    return value


LocalTime = Annotated[time, BeforeValidator(_not_a_number), AfterValidator(_no_offset)]
"""A local time of day in config ("09:00")."""


class Span(NamedTuple):
    """From `start` (inclusive) to `end` (exclusive); both aware UTC."""

    start: datetime
    end: datetime


def instant(zone: ZoneInfo, wall: datetime) -> datetime:
    """The UTC instant of the naive local time `wall` in `zone` (see the module doc for gaps and
    repeats)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def wall_clock(zone: ZoneInfo, at: datetime) -> datetime:
    """The naive local time shown in `zone` at the aware instant `at`."""
    return at.astimezone(zone).replace(tzinfo=None)


def require_aware(at: datetime) -> datetime:
    """`at` in UTC; a naive datetime has no defined instant, so it is refused."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no UTC offset: pass a timezone-aware datetime")
    return at.astimezone(UTC)
