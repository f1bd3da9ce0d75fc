"""On-call schedules: who is on call at an instant, and the shifts over a window. Pure, no I/O.

Rotation arithmetic runs on the schedule's *local wall clock*: hand-off k starts at
`start + k * length` in local time, then that local time is turned into an instant. So a weekly
09:00 hand-off in Europe/Berlin stays at 09:00 local across DST changes, and the week that
contains a DST change is 167 or 169 hours long.

Local times that do not exist (spring-forward gap) or occur twice (fall-back) resolve the PEP 495
way with `fold=0`: a 02:30 hand-off in a gap happens at 03:30 of the new offset; a repeated 02:30
hand-off happens at the first 02:30.

Before the rotation's `start` the first user is on call (a router must always find someone, and
the first user is the one about to take the first shift). Overrides apply at any time and win
over the rotation; when overrides overlap, the one listed last wins. All intervals are half-open
`[start, end)`: at a hand-off instant the incoming person is on call.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Annotated, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NaiveDatetime,
    model_validator,
)

# Hard cap on the shifts one `shifts()` call produces, so an API query over years of an hourly
# rotation cannot eat the process.
MAX_SHIFTS = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name like Europe/Berlin or UTC"
        ) from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]


class CustomRotation(_Strict):
    """A rotation of `hours` local wall-clock hours (e.g. 12 for day/night shifts)."""

    hours: int = Field(ge=1, le=24 * 366)


class Override(_Strict):
    """`user` is on call from `start` to `end` (absolute times with offsets), whatever the
    rotation says."""

    user: str = Field(min_length=1)
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self.end <= self.start:
            raise ValueError("override end must be after its start")
        return self


class Schedule(_Strict):
    """One rotation. `start` is the first hand-off in local time of `time_zone` (no offset);
    a weekly rotation hands off on `start`'s weekday at `start`'s time of day."""

    name: str = Field(min_length=1)
    time_zone: TimeZoneName = "UTC"
    rotation: Literal["daily", "weekly"] | CustomRotation = "weekly"
    users: list[str] = Field(min_length=1)
    start: NaiveDatetime
    overrides: list[Override] = Field(default_factory=list)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def shift_length(self) -> timedelta:
        """Length of one shift in local wall-clock time."""
        if self.rotation == "daily":
            return timedelta(days=1)
        if self.rotation == "weekly":
            return timedelta(weeks=1)
        assert isinstance(self.rotation, CustomRotation)
        return timedelta(hours=self.rotation.hours)


class Shift(NamedTuple):
    """`user` is on call from `start` (inclusive) to `end` (exclusive); both in UTC."""

    user: str
    start: datetime
    end: datetime


# --- rotation arithmetic --------------------------------------------------------------------


def _require_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value.astimezone(UTC)


def handoff(schedule: Schedule, k: int) -> datetime:
    """The instant (UTC) of hand-off k; hand-off 0 is `schedule.start`. k may be negative."""
    local = schedule.start + k * schedule.shift_length
    return local.replace(tzinfo=schedule.zone, fold=0).astimezone(UTC)


def _shift_index(schedule: Schedule, at_utc: datetime) -> int:
    """The k with handoff(k) <= at < handoff(k+1). Estimated on the wall clock, then corrected
    on instants (wall time is ambiguous in the fall-back hour)."""
    local = at_utc.astimezone(schedule.zone).replace(tzinfo=None)
    k = (local - schedule.start) // schedule.shift_length
    while handoff(schedule, k) > at_utc:
        k -= 1
    while handoff(schedule, k + 1) <= at_utc:
        k += 1
    return k


def _rotation_user(schedule: Schedule, at_utc: datetime) -> str:
    k = _shift_index(schedule, at_utc)
    if k < 0:
        return schedule.users[0]  # before the rotation starts: see the module docstring
    return schedule.users[k % len(schedule.users)]


def _override_user(schedule: Schedule, at_utc: datetime) -> str | None:
    for o in reversed(schedule.overrides):  # the last listed wins
        if o.start <= at_utc < o.end:
            return o.user
    return None


def who_is_on_call(schedule: Schedule, at: datetime) -> str:
    """The user on call at instant `at` (timezone-aware): an override if one covers `at`,
    else the rotation."""
    at_utc = _require_aware(at, "at")
    return _override_user(schedule, at_utc) or _rotation_user(schedule, at_utc)


def shifts(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """Who is on call from `start` to `end`, as consecutive shifts clipped to the window, with
    overrides applied and adjacent shifts of the same user merged. Times are UTC."""
    lo = _require_aware(start, "start")
    hi = _require_aware(end, "end")
    if hi <= lo:
        return []
    cuts = {lo, hi}
    k = _shift_index(schedule, lo) + 1
    while (t := handoff(schedule, k)) < hi:
        if len(cuts) > MAX_SHIFTS:
            raise ValueError(f"window too long: more than {MAX_SHIFTS} shifts")
        cuts.add(t)
        k += 1
    for o in schedule.overrides:
        cuts.update(t for t in (o.start.astimezone(UTC), o.end.astimezone(UTC)) if lo < t < hi)
    points = sorted(cuts)
    out: list[Shift] = []
    for a, b in pairwise(points):
        user = who_is_on_call(schedule, a)
        if out and out[-1].user == user:
            out[-1] = Shift(user, out[-1].start, b)
        else:
            out.append(Shift(user, a, b))
    return out


def on_call(schedules: Iterable[Schedule], at: datetime) -> dict[str, str]:
    """Schedule name -> user on call at `at` (for `GET /api/v1/oncall`)."""
    return {s.name: who_is_on_call(s, at) for s in schedules}
