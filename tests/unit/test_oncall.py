"""On-call rotation arithmetic: hand-offs, time zones, DST weekends, overrides, before the start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from router.oncall import Schedule, Shift, handoff, on_call, shifts, who_is_on_call

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MS = timedelta(milliseconds=1)


def schedule(**kw: Any) -> Schedule:
    data: dict[str, Any] = {"name": "primary", "users": ["alice", "bob", "carol"], **kw}
    return Schedule.model_validate(data)


# 2026 DST changes: Berlin 03-29 (spring forward) and 10-25 (fall back);
# New York 03-08 and 11-01.
BERLIN_WEEKLY = schedule(time_zone="Europe/Berlin", rotation="weekly", start="2026-03-23T09:00")
NY_DAILY = schedule(time_zone="America/New_York", rotation="daily", start="2026-03-07T09:00",
                    users=["xavier", "yolanda"])
UTC_DAILY = schedule(time_zone="UTC", rotation="daily", start="2026-01-01T00:00")
HOURS_12 = schedule(time_zone="Europe/Berlin", rotation={"hours": 12}, start="2026-03-28T08:00",
                    users=["day", "night"])


def local(zone: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold)  # type: ignore[arg-type,misc]


@pytest.mark.parametrize(
    ("sched", "at", "expected"),
    [
        # Hand-off exactly at the start time: the new person from 09:00:00, the previous until
        # 08:59:59.999.
        (BERLIN_WEEKLY, local(BERLIN, 2026, 3, 23, 9), "alice"),
        (BERLIN_WEEKLY, local(BERLIN, 2026, 3, 30, 9) - MS, "alice"),
        (BERLIN_WEEKLY, local(BERLIN, 2026, 3, 30, 9), "bob"),
        # Spring forward (Sun 03-29): the hand-off stays at 09:00 local on Monday.
        (BERLIN_WEEKLY, local(BERLIN, 2026, 3, 29, 3, 30), "alice"),
        (BERLIN_WEEKLY, datetime(2026, 3, 30, 7, 0, tzinfo=UTC), "bob"),  # 09:00 CEST
        (BERLIN_WEEKLY, datetime(2026, 3, 30, 6, 59, 59, tzinfo=UTC), "alice"),
        # Wraps around the users; fall back (Sun 10-25) keeps 09:00 local on Monday.
        (BERLIN_WEEKLY, local(BERLIN, 2026, 4, 6, 9), "carol"),
        (BERLIN_WEEKLY, local(BERLIN, 2026, 4, 13, 9), "alice"),
        (BERLIN_WEEKLY, local(BERLIN, 2026, 10, 26, 9) - MS, "alice"),  # week 30 from 10-19
        (BERLIN_WEEKLY, datetime(2026, 10, 26, 8, 0, tzinfo=UTC), "bob"),  # 09:00 CET, week 31
        # Before the rotation start: the first user (documented choice).
        (BERLIN_WEEKLY, local(BERLIN, 2026, 3, 23, 9) - MS, "alice"),
        (BERLIN_WEEKLY, local(BERLIN, 2025, 1, 1, 0), "alice"),
        # New York daily across both DST changes.
        (NY_DAILY, local(NEW_YORK, 2026, 3, 7, 9), "xavier"),
        (NY_DAILY, local(NEW_YORK, 2026, 3, 8, 9) - MS, "xavier"),
        (NY_DAILY, local(NEW_YORK, 2026, 3, 8, 9), "yolanda"),
        (NY_DAILY, datetime(2026, 3, 8, 13, 0, tzinfo=UTC), "yolanda"),  # 09:00 EDT
        (NY_DAILY, datetime(2026, 3, 8, 12, 59, 59, tzinfo=UTC), "xavier"),
        (NY_DAILY, datetime(2026, 11, 1, 14, 0, tzinfo=UTC), "yolanda"),  # 09:00 EST, day 239
        (NY_DAILY, datetime(2026, 11, 1, 13, 59, 59, tzinfo=UTC), "xavier"),
        # UTC daily; the instant's own offset does not matter.
        (UTC_DAILY, datetime(2026, 1, 1, tzinfo=UTC), "alice"),
        (UTC_DAILY, datetime(2026, 1, 2, tzinfo=UTC) - MS, "alice"),
        (UTC_DAILY, datetime(2026, 1, 2, tzinfo=UTC), "bob"),
        (UTC_DAILY, local(BERLIN, 2026, 1, 3, 1), "carol"),  # 00:00 UTC on the 3rd
        (UTC_DAILY, local(BERLIN, 2026, 1, 3, 0, 59), "bob"),
        # 12-hour shifts keep 08:00/20:00 local across the spring-forward night (11 h night).
        (HOURS_12, local(BERLIN, 2026, 3, 28, 20), "night"),
        (HOURS_12, local(BERLIN, 2026, 3, 29, 8) - MS, "night"),
        (HOURS_12, local(BERLIN, 2026, 3, 29, 8), "day"),
    ],
)
def test_who_is_on_call(sched: Schedule, at: datetime, expected: str) -> None:
    assert who_is_on_call(sched, at) == expected


@pytest.mark.parametrize(
    ("sched", "k", "hours"),
    [
        (BERLIN_WEEKLY, 0, 167),  # the week containing spring forward
        (BERLIN_WEEKLY, 1, 168),
        (BERLIN_WEEKLY, 30, 169),  # 10-19 -> 10-26 contains fall back
        (NY_DAILY, 0, 23),
        (NY_DAILY, 238, 25),  # 10-31 -> 11-01
        (UTC_DAILY, 0, 24),
        (HOURS_12, 1, 11),  # 03-28 20:00 -> 03-29 08:00 across the gap
    ],
)
def test_shift_lengths_follow_the_local_clock(sched: Schedule, k: int, hours: int) -> None:
    assert handoff(sched, k + 1) - handoff(sched, k) == timedelta(hours=hours)
    # The hand-off happens at the planned local wall-clock time.
    hand = handoff(sched, k).astimezone(sched.zone).replace(tzinfo=None)
    assert hand == sched.start + k * sched.shift_length


def test_handoff_in_a_dst_gap_or_fold_resolves_with_fold_0() -> None:
    gap = schedule(time_zone="Europe/Berlin", rotation="daily", start="2026-03-28T02:30")
    # 02:30 does not exist on 03-29: the hand-off is at 03:30 CEST (01:30 UTC).
    assert handoff(gap, 1) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    fold = schedule(time_zone="Europe/Berlin", rotation="daily", start="2026-10-24T02:45")
    # 02:45 happens twice on 10-25: the hand-off is at the first one (00:45 UTC).
    assert handoff(fold, 1) == datetime(2026, 10, 25, 0, 45, tzinfo=UTC)
    # Both 02:30s of that night are told apart by their instants.
    assert who_is_on_call(fold, local(BERLIN, 2026, 10, 25, 2, 30, fold=0)) == "alice"
    assert who_is_on_call(fold, local(BERLIN, 2026, 10, 25, 2, 30, fold=1)) == "bob"


# An override from Sunday evening to Tuesday morning spans the Monday 09:00 hand-off.
OVERRIDDEN = BERLIN_WEEKLY.model_copy(update={"overrides": Schedule.model_validate({
    "name": "x", "users": ["x"], "start": "2026-01-01T00:00",
    "overrides": [
        {"user": "zoe", "start": "2026-03-29T18:00:00+02:00", "end": "2026-03-31T09:00:00+02:00"},
        {"user": "yan", "start": "2026-03-30T12:00:00+02:00", "end": "2026-03-30T13:00:00+02:00"},
    ],
}).overrides})


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (local(BERLIN, 2026, 3, 29, 18) - MS, "alice"),
        (local(BERLIN, 2026, 3, 29, 18), "zoe"),
        (local(BERLIN, 2026, 3, 30, 9), "zoe"),  # the rotation would say bob
        (local(BERLIN, 2026, 3, 30, 12, 30), "yan"),  # overlapping: the last listed wins
        (local(BERLIN, 2026, 3, 30, 13), "zoe"),
        (local(BERLIN, 2026, 3, 31, 9) - MS, "zoe"),
        (local(BERLIN, 2026, 3, 31, 9), "bob"),  # override ends: back to the rotation
    ],
)
def test_overrides_win_over_the_rotation(at: datetime, expected: str) -> None:
    assert who_is_on_call(OVERRIDDEN, at) == expected


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]


def test_shifts_apply_overrides_and_clip_to_the_window() -> None:
    got = shifts(OVERRIDDEN, utc(2026, 3, 20), utc(2026, 4, 7))
    assert got == [
        Shift("alice", utc(2026, 3, 20), utc(2026, 3, 29, 16)),  # pre-start merged with shift 0
        Shift("zoe", utc(2026, 3, 29, 16), utc(2026, 3, 30, 10)),
        Shift("yan", utc(2026, 3, 30, 10), utc(2026, 3, 30, 11)),
        Shift("zoe", utc(2026, 3, 30, 11), utc(2026, 3, 31, 7)),
        Shift("bob", utc(2026, 3, 31, 7), utc(2026, 4, 6, 7)),
        Shift("carol", utc(2026, 4, 6, 7), utc(2026, 4, 7)),
    ]
    # Shifts tile the window with no gap or overlap.
    assert all(a.end == b.start for a, b in pairwise(got))


@pytest.mark.parametrize(
    ("sched", "start", "end", "expected_hours"),
    [
        (BERLIN_WEEKLY, local(BERLIN, 2026, 3, 23, 9), local(BERLIN, 2026, 4, 6, 9), [167, 168]),
        (BERLIN_WEEKLY, local(BERLIN, 2026, 10, 19, 9), local(BERLIN, 2026, 11, 2, 9),
         [169, 168]),
        (NY_DAILY, local(NEW_YORK, 2026, 3, 7, 9), local(NEW_YORK, 2026, 3, 10, 9), [23, 24, 24]),
        (NY_DAILY, local(NEW_YORK, 2026, 10, 31, 9), local(NEW_YORK, 2026, 11, 2, 9), [25, 24]),
    ],
)
def test_shifts_over_dst_weekends(
    sched: Schedule, start: datetime, end: datetime, expected_hours: list[int]
) -> None:
    got = shifts(sched, start, end)
    assert [(s.end - s.start) / timedelta(hours=1) for s in got] == expected_hours
    for s in got:
        assert s.start.astimezone(sched.zone).hour == 9


def test_shifts_of_a_single_user_merge_and_empty_window() -> None:
    solo = schedule(users=["only"], rotation="daily", start="2026-01-01T00:00")
    assert shifts(solo, utc(2026, 1, 1), utc(2026, 1, 10)) == [
        Shift("only", utc(2026, 1, 1), utc(2026, 1, 10))
    ]
    assert shifts(solo, utc(2026, 1, 2), utc(2026, 1, 1)) == []


def test_shifts_refuse_huge_windows() -> None:
    hourly = schedule(rotation={"hours": 1}, start="2026-01-01T00:00")
    with pytest.raises(ValueError, match="window too long"):
        shifts(hourly, utc(2026, 1, 1), utc(2028, 1, 1))


def test_on_call_lists_every_schedule() -> None:
    at = local(BERLIN, 2026, 3, 30, 9)
    assert on_call([BERLIN_WEEKLY, NY_DAILY.model_copy(update={"name": "ny"})], at) == {
        "primary": "bob", "ny": "xavier"}


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        who_is_on_call(UTC_DAILY, datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"start": "2026-01-05T09:00:00+01:00"}, "should not have timezone info"),
        ({"users": []}, "at least 1 item"),
        ({"rotation": "monthly"}, "rotation"),
        ({"rotation": {"hours": 0}}, "greater than or equal to 1"),
        ({"overrides": [{"user": "z", "start": "2026-01-02T00:00:00Z",
                         "end": "2026-01-01T00:00:00Z"}]}, "override end must be after"),
        ({"overrides": [{"user": "z", "start": "2026-01-01T00:00",
                         "end": "2026-01-02T00:00"}]}, "timezone info"),
        ({"handoff": "monday"}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors(data: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"name": "p", "users": ["a"], "start": "2026-01-05T09:00"}
    with pytest.raises(ValidationError, match=message):
        Schedule.model_validate({**base, **data})
