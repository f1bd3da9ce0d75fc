"""Business-hours calendars and the per-severity response policy. Pure time arithmetic, no I/O.

A calendar is open during its weekly opening hours (local wall-clock spans, several a day if
needed, `24:00` allowed as an end) except on its holidays (whole local days). Each span is turned
into instants by the rule in `router.noise.localtime`, so 09:00-17:00 stays 09:00-17:00 local
across DST changes, and a span that falls inside a spring-forward gap does not happen that day.
Spans are half-open: at 17:00:00 a 09:00-17:00 calendar is closed. A span ending at 24:00 and one
starting at 00:00 the next day are one continuous opening.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from router.model import Frozen
from router.noise.localtime import (
    WEEKDAYS,
    LocalTime,
    Span,
    Weekday,
    instant,
    require_aware,
    wall_clock,
)
from router.oncall import TimeZoneName
from router.policy import Response

# `24:00` as an end of day; a `time` cannot hold 24:00, so the last representable instant stands in
# for it and is turned back into the next midnight when spans become instants.
END_OF_DAY = time.max
_DAY = timedelta(days=1)


def _end_of_day(value: Any) -> Any:
    if isinstance(value, str) and value.strip() in {"24:00", "24:00:00"}:
        return END_OF_DAY
    return value


def _format_end(value: time) -> str:
    return "24:00" if value == END_OF_DAY else value.isoformat()


ClosingTime = Annotated[
    LocalTime, BeforeValidator(_end_of_day), PlainSerializer(_format_end, return_type=str)
]


class OpeningHours(Frozen):
    """Open on each of `days` from `start` to `end`, local time."""

    days: tuple[Weekday, ...] = Field(min_length=1)
    start: LocalTime
    end: ClosingTime

    @model_validator(mode="after")
    def _span(self) -> OpeningHours:
        if self.end <= self.start:
            raise ValueError(
                f"opening hours end {_format_end(self.end)} is not after start "
                f"{self.start.isoformat()}: split a span over midnight into one ending at 24:00 "
                "and one starting at 00:00 the next day"
            )
        return self


class Calendar(Frozen):
    """When a team works: weekly opening hours in `time_zone`, closed on `holidays`."""

    name: str = Field(min_length=1)
    time_zone: TimeZoneName = "UTC"
    hours: tuple[OpeningHours, ...] = Field(min_length=1)
    holidays: tuple[date, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def _day_spans(cal: Calendar, day: date) -> list[Span]:
    """The opening spans (UTC) of one local day, in order of start."""
    if day in cal.holidays:
        return []
    weekday, zone = WEEKDAYS[day.weekday()], cal.zone
    spans = []
    for hours in cal.hours:
        if weekday not in hours.days:
            continue
        start = instant(zone, datetime.combine(day, hours.start))
        end = instant(
            zone,
            datetime.combine(day + _DAY, time())
            if hours.end == END_OF_DAY
            else datetime.combine(day, hours.end),
        )
        if start < end:  # a span inside a spring-forward gap collapses
            spans.append(Span(start, end))
    return sorted(spans)


def _spans_near(cal: Calendar, at: datetime) -> list[Span]:
    """The spans of the local day of `at` and its neighbours (a DST shift can move a span's
    instants across midnight)."""
    day = wall_clock(cal.zone, at).date()
    return [s for d in (day - _DAY, day, day + _DAY) for s in _day_spans(cal, d)]


def _search_limit(cal: Calendar, at: datetime) -> date:
    """A day by which every question has an answer: each holiday can cancel one occurrence of a
    weekday's span and a DST gap one more, so some span happens within this many weeks."""
    return wall_clock(cal.zone, at).date() + timedelta(weeks=len(cal.holidays) + 3)


def is_open(cal: Calendar, at: datetime) -> bool:
    """Is the calendar open at `at` (aware)?"""
    at = require_aware(at)
    return any(s.start <= at < s.end for s in _spans_near(cal, at))


def next_opening(cal: Calendar, at: datetime) -> datetime:
    """The first instant (UTC) at or after `at` at which the calendar is open: `at` itself when
    open, else the start of the next opening (03:00 -> 09:00 the same day, Friday 18:00 ->
    Monday 09:00, a holiday Monday -> Tuesday 09:00)."""
    at = require_aware(at)
    if is_open(cal, at):
        return at
    day, limit = wall_clock(cal.zone, at).date() - _DAY, _search_limit(cal, at)
    while day <= limit:
        # Closed at `at`, so the earliest span starting after it is the opening; the next day is
        # looked at too because a DST shift can reorder instants around midnight.
        starts = [s.start for d in (day, day + _DAY) for s in _day_spans(cal, d) if s.start > at]
        if starts:
            return min(starts)
        day += _DAY
    raise AssertionError(f"calendar {cal.name!r} has opening hours but never opens")  # unreachable


def next_closing(cal: Calendar, at: datetime) -> datetime | None:
    """The first instant (UTC) at or after `at` at which the calendar is closed: `at` itself when
    closed, else the end of the current opening (continued across midnight when a 24:00 end meets
    a 00:00 start). None when it never closes again (open around the clock, no holiday ahead)."""
    at = require_aware(at)
    end = max((s.end for s in _spans_near(cal, at) if s.start <= at < s.end), default=None)
    if end is None:
        return at
    last_holiday = max(cal.holidays, default=date.min)
    while True:
        later = max((s.end for s in _spans_near(cal, end) if s.start <= end < s.end), default=None)
        if later is None:
            return end
        end = later
        day = wall_clock(cal.zone, end).date()
        if day > max(last_holiday, wall_clock(cal.zone, at).date()) + timedelta(weeks=1):
            return None  # a full week open with no holiday left: open for good


def defer_until(response: Response, cal: Calendar, at: datetime) -> datetime | None:
    """When to send a notification answered by `response` (a severity's response in
    `router.policy`); None means now. Paging responses never wait; business-hours ones and
    `backlog` (the caller sends those to a digest or ticket receiver) wait for the next opening
    when `at` is outside business hours."""
    if response in ("page_everyone", "page_oncall"):
        return None
    return None if is_open(cal, at) else next_opening(cal, at)
