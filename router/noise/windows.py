"""Maintenance windows: when a scheduled window is open. Pure time arithmetic, no I/O.

A window is one-off (`start`/`end`) or recurring: a `cron` expression (croniter) or a `weekly`
list of days (dateutil's rrule), each occurrence lasting `duration`. Recurrences are evaluated on
the window's local wall clock, so a daily 22:00 window stays at 22:00 local across DST changes;
local times are turned into instants by the rule in `router.noise.localtime` (a skipped 02:30
starts at 03:30 of the new offset, a repeated one at its first occurrence). `duration` is
elapsed time: a 2h occurrence lasts two real hours even across a DST change.

Occurrences that overlap or touch form one span: the window is open from the first one's start to
the last one's end. All spans are half-open `[start, end)` and in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from copy import copy
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter
from dateutil.rrule import WEEKLY, rrule
from pydantic import Field, field_validator, model_validator

from router.durations import Duration
from router.model import Frozen
from router.noise.localtime import (
    MAX_SHIFT,
    WEEKDAYS,
    LocalTime,
    Span,
    Weekday,
    instant,
    require_aware,
    wall_clock,
)
from router.noise.matchers import parsable
from router.oncall import TimeZoneName

# How far `next_change` looks for the next occurrence: a Feb 29 cron fires at most 8 years apart.
HORIZON = timedelta(days=9 * 366)
# Times a span is extended over overlapping occurrences, each way, at most (each step moves it by
# up to one occurrence length): a window that never closes (every minute, lasting two) is
# reported as closing there, and is found open again then.
MAX_CHAIN = 1_000
_FIRST_STEP = timedelta(hours=1)
_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)
_MAX_STEP = timedelta(days=64)
_CRON_MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)


class Weekly(Frozen):
    """Every listed day at `start` local time, for `duration`."""

    days: tuple[Weekday, ...] = Field(min_length=1)
    start: LocalTime
    duration: Duration

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        return _positive_duration(value)


class MaintenanceWindow(Frozen):
    """Alerts matching `matchers` are not notified while the window is open.

    `matchers` are label matcher strings (`service="checkout"`, `env=~"prod|staging"`), parsed
    where they are applied. `after` says what happens to alerts still firing when it closes:
    `notify` them then, or `drop` them."""

    name: str = Field(min_length=1)
    matchers: tuple[str, ...] = Field(min_length=1)
    time_zone: TimeZoneName = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    duration: Duration | None = None
    weekly: Weekly | None = None
    after: Literal["notify", "drop"] = "notify"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = " ".join(value.split())
        if not (text in _CRON_MACROS or len(text.split()) == 5) or not croniter.is_valid(text):
            raise ValueError(
                f"invalid cron expression {value!r}: use 5 fields (minute hour day-of-month "
                "month day-of-week, e.g. '0 2 * * sun') or @daily, @weekly, @monthly, ..."
            )
        try:
            copy(_parsed_cron(text)).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"cron expression {value!r} never matches a date") from None
        return text

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else _positive_duration(value)

    @model_validator(mode="after")
    def _one_schedule(self) -> MaintenanceWindow:
        one_off = self.start is not None or self.end is not None
        recurring = self.cron is not None or self.duration is not None
        if one_off + recurring + (self.weekly is not None) != 1:
            raise ValueError(
                f"maintenance window {self.name!r} needs exactly one schedule: start and end "
                "(one-off), cron and duration, or weekly"
            )
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError(f"maintenance window {self.name!r} needs both start and end")
            span = self.one_off
            assert span is not None
            if span.end <= span.start:
                raise ValueError(f"maintenance window {self.name!r} ends before it starts")
        if recurring and (self.cron is None or self.duration is None):
            raise ValueError(f"maintenance window {self.name!r} needs both cron and duration")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def one_off(self) -> Span | None:
        """The span of a one-off window (a `start`/`end` without offset is local time)."""
        if self.start is None or self.end is None:
            return None
        return Span(self._instant(self.start), self._instant(self.end))

    @property
    def length(self) -> timedelta:
        """How long one occurrence of a recurring window lasts."""
        if self.weekly is not None:
            return self.weekly.duration
        assert self.duration is not None, "a one-off window has no recurrence"
        return self.duration

    def _instant(self, value: datetime) -> datetime:
        if value.tzinfo is None:
            return instant(self.zone, value)
        return value.astimezone(UTC)

    _parsable = field_validator("matchers")(parsable)


def _positive_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("duration must be positive, e.g. 2h")
    return value


# --- occurrences ----------------------------------------------------------------------------


def _walls(window: MaintenanceWindow, lo: datetime, hi: datetime) -> Iterator[datetime]:
    """Occurrence starts on the local wall clock (naive) from `lo` to `hi`."""
    if window.cron is not None:
        return _cron_walls(window.cron, lo, hi)
    assert window.weekly is not None
    weekly = window.weekly
    rule = rrule(
        WEEKLY,
        dtstart=lo,
        byweekday=[WEEKDAYS.index(day) for day in weekly.days],
        byhour=weekly.start.hour,
        byminute=weekly.start.minute,
        bysecond=weekly.start.second,
    )
    return iter(rule.between(lo, hi, inc=True))


@lru_cache(maxsize=1024)
def _parsed_cron(expression: str) -> croniter:
    return croniter(expression, datetime(2000, 1, 1))


def _cron_walls(expression: str, lo: datetime, hi: datetime) -> Iterator[datetime]:
    """croniter_range(lo, hi) without parsing the expression on every call (that was most of an
    `active_at`): each call iterates its own shallow copy of one parsed croniter."""
    matches = copy(_parsed_cron(expression))
    matches.set_current(lo - _TICK, force=True)
    try:
        while (wall := matches.get_next(datetime)) <= hi:
            yield wall
    except CroniterBadDateError:  # no match for decades: none in range either
        return


def _starts(window: MaintenanceWindow, lo: datetime, hi: datetime) -> list[datetime]:
    """Occurrence start instants in `[lo, hi)`, ascending. Near a UTC-offset change the wall-clock
    range is widened by more than any shift, then cut exactly on instants (a skipped wall time
    lands after the gap, a repeated one on its first pass). Away from one, wall and instant
    ranges match exactly, which keeps a frequent cron cheap (a zone changes offset at most once
    in a day and six hours)."""
    zone = window.zone
    steady = hi - lo <= _DAY and (
        (lo - MAX_SHIFT).astimezone(zone).utcoffset()
        == (hi + MAX_SHIFT).astimezone(zone).utcoffset()
    )
    margin = timedelta(0) if steady else MAX_SHIFT
    walls = _walls(window, wall_clock(zone, lo) - margin, wall_clock(zone, hi) + margin)
    return sorted({s for w in walls if lo <= (s := instant(zone, w)) < hi})


def _starts_after(window: MaintenanceWindow, at: datetime) -> Iterator[datetime]:
    """Occurrence starts strictly after `at`, ascending, up to HORIZON. Searched in growing
    chunks, so a frequent cron costs little and a yearly one a few steps."""
    lo, step = at + _TICK, _FIRST_STEP
    while lo <= at + HORIZON:
        yield from _starts(window, lo, lo + step)
        lo, step = lo + step, min(step * 2, _MAX_STEP)


# --- the questions the engine asks ----------------------------------------------------------


def _covering(window: MaintenanceWindow, at: datetime) -> list[datetime]:
    """Starts of the occurrences of a recurring window that contain `at`: those in
    `(at - length, at]`."""
    return _starts(window, at - window.length + _TICK, at + _TICK)


def current_span(window: MaintenanceWindow, at: datetime) -> Span | None:
    """The span (UTC) of the window that contains `at`, or None when it is closed at `at`."""
    at = require_aware(at)
    one_off = window.one_off
    if one_off is not None:
        return one_off if one_off.start <= at < one_off.end else None
    covering = _covering(window, at)
    if not covering:
        return None
    length = window.length
    start, end = covering[0], covering[-1] + length
    # Extend over occurrences that overlap or touch the span, a bounded number of steps.
    for _ in range(MAX_CHAIN):
        earlier = _starts(window, start - length, start)
        if not earlier:
            break
        start = earlier[0]
    scanned = at + _TICK
    for _ in range(MAX_CHAIN):
        later = _starts(window, scanned, end + _TICK)
        if not later:
            break
        scanned, end = end + _TICK, later[-1] + length
    return Span(start, end)


def active_at(window: MaintenanceWindow, at: datetime) -> bool:
    """Is the window open at `at` (aware)?"""
    at = require_aware(at)
    one_off = window.one_off
    if one_off is not None:
        return one_off.start <= at < one_off.end
    return bool(_covering(window, at))


def next_change(window: MaintenanceWindow, at: datetime) -> datetime | None:
    """The next instant (UTC, after `at`) at which the window opens or closes, for the engine's
    timer; None when it never changes again (a one-off window that has ended)."""
    at = require_aware(at)
    span = current_span(window, at)
    if span is not None:
        return span.end
    one_off = window.one_off
    if one_off is not None:
        return one_off.start if at < one_off.start else None
    return next(_starts_after(window, at), None)
