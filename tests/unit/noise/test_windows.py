"""Maintenance-window arithmetic: one-off, cron and weekly windows in Europe/Berlin,
America/New_York and Asia/Kolkata, across DST changes, midnight and the new year."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from croniter import croniter_range
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from router.noise.localtime import Span
from router.noise.windows import MaintenanceWindow, active_at, current_span, next_change
from tests.unit.noise.zones import US, berlin, ist, ny, utc


def window(**kw: Any) -> MaintenanceWindow:
    data: dict[str, Any] = {"name": "db-patching", "matchers": ['service="db"'], **kw}
    return MaintenanceWindow.model_validate(data)


NEW_YEAR = window(time_zone="Europe/Berlin", start="2026-12-31T22:00", end="2027-01-01T02:00")
WITH_OFFSETS = window(start="2026-06-01T10:00:00+02:00", end="2026-06-01T12:00:00+02:00")
NY_NIGHTLY = window(time_zone="America/New_York", cron="0 22 * * *", duration="4h")
BERLIN_0230 = window(time_zone="Europe/Berlin", cron="30 2 * * *", duration="2h")
BERLIN_0230_1H = window(time_zone="Europe/Berlin", cron="30 2 * * *", duration="1h")
BERLIN_SAT_NIGHT = window(
    time_zone="Europe/Berlin", weekly={"days": ["sat"], "start": "22:00", "duration": "6h"}
)
NY_SUNDAY_EARLY = window(
    time_zone="America/New_York", weekly={"days": ["sun"], "start": "01:00", "duration": "2h"}
)
KOLKATA_LATE = window(
    time_zone="Asia/Kolkata", weekly={"days": ["mon", "wed"], "start": "23:30", "duration": "1h"}
)

KOLKATA_NYE = window(time_zone="Asia/Kolkata", cron="0 23 31 12 *", duration="3h")
OVERLAPPING = window(cron="0 0,1 * * *", duration="90m")  # 00:00-01:30 and 01:00-02:30
WEEKEND = window(weekly={"days": ["sat", "sun"], "start": "00:00", "duration": "1d"})
LEAP_DAY = window(cron="0 0 29 2 *", duration="1d")
HOURLY_MACRO = window(time_zone="Asia/Kolkata", cron="@hourly", duration="5m")

# Spans that the DST rows below expect (UTC).
SPRING_0230 = Span(utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 3, 30))
AFTER_SPRING_0230 = Span(utc(2026, 3, 30, 0, 30), utc(2026, 3, 30, 2, 30))
FALL_0230 = Span(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30))
FALL_SAT_NIGHT = Span(utc(2026, 10, 24, 20), utc(2026, 10, 25, 2))
NY_FALL_SUNDAY = Span(utc(2026, 11, 1, 5), utc(2026, 11, 1, 7))


@pytest.mark.parametrize(
    ("win", "at", "span"),
    [
        # One-off over midnight and the new year, local times without offset; half-open.
        (NEW_YEAR, berlin(2026, 12, 31, 21, 59), None),
        (NEW_YEAR, berlin(2026, 12, 31, 22), (utc(2026, 12, 31, 21), utc(2027, 1, 1, 1))),
        (NEW_YEAR, berlin(2027, 1, 1, 1, 59), (utc(2026, 12, 31, 21), utc(2027, 1, 1, 1))),
        (NEW_YEAR, berlin(2027, 1, 1, 2), None),
        # One-off with offsets: taken as written; `at` in any zone.
        (WITH_OFFSETS, utc(2026, 6, 1, 7, 59), None),
        (WITH_OFFSETS, ny(2026, 6, 1, 4), (utc(2026, 6, 1, 8), utc(2026, 6, 1, 10))),
        # Cron 22:00 New York for 4h spans midnight: 02:00 UTC-4 = 06:00 UTC next day.
        (NY_NIGHTLY, ny(2026, 7, 14, 21, 59), None),
        (NY_NIGHTLY, ny(2026, 7, 15, 1), (utc(2026, 7, 15, 2), utc(2026, 7, 15, 6))),
        (NY_NIGHTLY, ny(2026, 7, 15, 2), None),
        # ... and in winter it is still 22:00 local (03:00 UTC).
        (NY_NIGHTLY, ny(2026, 12, 1, 23), (utc(2026, 12, 2, 3), utc(2026, 12, 2, 7))),
        # 02:30 Berlin on the day before spring forward: 02:30 CET.
        (BERLIN_0230, berlin(2026, 3, 28, 3), (utc(2026, 3, 28, 1, 30), utc(2026, 3, 28, 3, 30))),
        # Spring forward: 02:30 does not exist, it starts at 03:30 CEST (01:30 UTC), lasts 2h.
        (BERLIN_0230, berlin(2026, 3, 29, 3, 29), None),
        (BERLIN_0230, berlin(2026, 3, 29, 3, 30), SPRING_0230),
        (BERLIN_0230, berlin(2026, 3, 29, 5, 29), SPRING_0230),
        (BERLIN_0230, berlin(2026, 3, 29, 5, 30), None),
        # The day after: 02:30 CEST.
        (BERLIN_0230, berlin(2026, 3, 30, 2, 30), AFTER_SPRING_0230),
        # Fall back: 02:30 happens twice; the window starts at the first (CEST, 00:30 UTC) and
        # lasts one real hour, to the second 02:30 (CET). The wall clock shows 02:15 twice:
        # before the window the first time, inside it the second time.
        (BERLIN_0230_1H, berlin(2026, 10, 25, 2, 15), None),
        (BERLIN_0230_1H, berlin(2026, 10, 25, 2, 45), FALL_0230),
        (BERLIN_0230_1H, berlin(2026, 10, 25, 2, 15, fold=1), FALL_0230),
        (BERLIN_0230_1H, berlin(2026, 10, 25, 2, 30, fold=1), None),
        # Weekly Saturday 22:00 for 6h over the fall-back night: 22:00 CEST to 03:00 CET.
        (BERLIN_SAT_NIGHT, berlin(2026, 10, 24, 21, 59), None),
        (BERLIN_SAT_NIGHT, berlin(2026, 10, 25, 2, 59), FALL_SAT_NIGHT),
        (BERLIN_SAT_NIGHT, berlin(2026, 10, 25, 3), None),
        # ... over the spring-forward night: 22:00 CET to 05:00 CEST.
        (BERLIN_SAT_NIGHT, berlin(2026, 3, 29, 4, 59), (utc(2026, 3, 28, 21), utc(2026, 3, 29, 3))),
        # Weekly Sunday 01:00 New York for 2h over spring forward: 01:00 EST to 04:00 EDT.
        (NY_SUNDAY_EARLY, ny(2026, 3, 8, 3, 59), (utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))),
        (NY_SUNDAY_EARLY, ny(2026, 3, 8, 4), None),
        # ... and over fall back: 01:00 EDT to 02:00 EST (the repeated 01:xx is inside).
        (NY_SUNDAY_EARLY, ny(2026, 11, 1, 1, 30, fold=1), NY_FALL_SUNDAY),
        (NY_SUNDAY_EARLY, ny(2026, 11, 1, 2), None),
        # Kolkata (no DST), Monday 23:30 for 1h: Tuesday 00:15 is inside, Tuesday 23:45 is not.
        (KOLKATA_LATE, ist(2026, 9, 8, 0, 15), (utc(2026, 9, 7, 18), utc(2026, 9, 7, 19))),
        (KOLKATA_LATE, ist(2026, 9, 8, 23, 45), None),
        (KOLKATA_LATE, ist(2026, 9, 10, 0, 29), (utc(2026, 9, 9, 18), utc(2026, 9, 9, 19))),
        # New year's eve in Kolkata, 23:00 for 3h into the new year.
        (KOLKATA_NYE, ist(2027, 1, 1, 1), (utc(2026, 12, 31, 17, 30), utc(2026, 12, 31, 20, 30))),
        (KOLKATA_NYE, ist(2027, 1, 1, 2), None),
        # @hourly in Kolkata: the first 5 minutes of every local hour.
        (HOURLY_MACRO, ist(2026, 5, 5, 7, 4), (utc(2026, 5, 5, 1, 30), utc(2026, 5, 5, 1, 35))),
        (HOURLY_MACRO, ist(2026, 5, 5, 7, 5), None),
        # Overlapping occurrences merge: 00:00-01:30 and 01:00-02:30 are one span.
        (OVERLAPPING, utc(2026, 5, 5, 0, 15), (utc(2026, 5, 5, 0), utc(2026, 5, 5, 2, 30))),
        (OVERLAPPING, utc(2026, 5, 5, 2, 29), (utc(2026, 5, 5, 0), utc(2026, 5, 5, 2, 30))),
        (OVERLAPPING, utc(2026, 5, 5, 2, 30), None),
        # Touching occurrences merge: Saturday and Sunday are one weekend, over the new year.
        (WEEKEND, utc(2027, 1, 2, 12), (utc(2027, 1, 2), utc(2027, 1, 4))),
        (WEEKEND, utc(2027, 1, 3, 23, 59), (utc(2027, 1, 2), utc(2027, 1, 4))),
        (WEEKEND, utc(2027, 1, 4), None),
        (LEAP_DAY, utc(2028, 2, 29, 23), (utc(2028, 2, 29), utc(2028, 3, 1))),
    ],
)
def test_current_span(
    win: MaintenanceWindow, at: datetime, span: tuple[datetime, datetime] | None
) -> None:
    assert current_span(win, at) == span
    assert active_at(win, at) is (span is not None)


@pytest.mark.parametrize(
    ("win", "at", "change"),
    [
        (NEW_YEAR, utc(2026, 1, 1), utc(2026, 12, 31, 21)),
        (NEW_YEAR, utc(2026, 12, 31, 21), utc(2027, 1, 1, 1)),
        (NEW_YEAR, utc(2027, 1, 1, 1), None),
        # Closed: the next opening; open: its end.
        (NY_NIGHTLY, ny(2026, 7, 14, 12), utc(2026, 7, 15, 2)),
        (NY_NIGHTLY, ny(2026, 7, 14, 23), utc(2026, 7, 15, 6)),
        # Timer armed at 03:00 CEST on spring-forward day: the window opens at 03:30 CEST.
        (BERLIN_0230, berlin(2026, 3, 29, 3), utc(2026, 3, 29, 1, 30)),
        # At its end the next change is the next day's start.
        (BERLIN_0230, utc(2026, 3, 29, 3, 30), utc(2026, 3, 30, 0, 30)),
        (BERLIN_0230_1H, berlin(2026, 10, 25, 2, 15), utc(2026, 10, 25, 0, 30)),
        (BERLIN_0230_1H, berlin(2026, 10, 25, 2, 15, fold=1), utc(2026, 10, 25, 1, 30)),
        (KOLKATA_NYE, ist(2027, 1, 1, 3), utc(2027, 12, 31, 17, 30)),
        (WEEKEND, utc(2027, 1, 1, 12), utc(2027, 1, 2)),
        (WEEKEND, utc(2027, 1, 2, 12), utc(2027, 1, 4)),
        (OVERLAPPING, utc(2026, 5, 5, 0, 15), utc(2026, 5, 5, 2, 30)),
        # A February 29 cron: the next one is four years on.
        (LEAP_DAY, utc(2024, 3, 1), utc(2028, 2, 29)),
    ],
)
def test_next_change(win: MaintenanceWindow, at: datetime, change: datetime | None) -> None:
    assert next_change(win, at) == change


@pytest.mark.parametrize(
    ("win", "at"),
    [
        (BERLIN_0230, berlin(2026, 3, 26)),
        (BERLIN_0230_1H, berlin(2026, 10, 22)),
        (BERLIN_SAT_NIGHT, berlin(2026, 10, 20)),
        (NY_SUNDAY_EARLY, ny(2026, 10, 28)),
        (NY_NIGHTLY, ny(2026, 3, 5)),
        (KOLKATA_LATE, ist(2026, 12, 27)),
        (OVERLAPPING, utc(2026, 12, 30)),
    ],
)
def test_next_change_lands_on_every_change(win: MaintenanceWindow, at: datetime) -> None:
    """Following next_change for two weeks (across a DST change or the new year), the window's
    state flips exactly at each instant returned, and never in between."""
    t = at
    for _ in range(20):
        change = next_change(win, t)
        assert change is not None and change > t
        assert active_at(win, change) is not active_at(win, change - US)
        for probe in (t + (change - t) / 3, t + (change - t) * 2 / 3, change - US):
            assert active_at(win, probe) is active_at(win, t)
        t = change


def test_a_window_that_never_closes_is_reported_in_bounded_pieces() -> None:
    # Every minute, lasting two: always open. The end reported is far ahead and still open
    # there, so a timer armed at it just finds the window open again.
    always = window(cron="* * * * *", duration="2m")
    at = utc(2026, 5, 5, 12)
    span = current_span(always, at)
    assert span is not None and span.start < at < span.end - timedelta(hours=12)
    assert active_at(always, span.end)


def test_span_is_a_tuple_of_utc_instants() -> None:
    span = current_span(NY_NIGHTLY, ny(2026, 7, 14, 23))
    assert isinstance(span, Span)
    start, end = span
    assert start.tzinfo is UTC and end.tzinfo is UTC


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="has no UTC offset"):
        active_at(NY_NIGHTLY, datetime(2026, 7, 14, 23))


def test_defaults_and_after() -> None:
    assert NY_NIGHTLY.after == "notify"
    assert window(cron="0 2 * * sun", duration="2h", after="drop").after == "drop"
    assert NY_NIGHTLY.matchers == ('service="db"',)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({}, "needs exactly one schedule: start and end (one-off), cron and duration, or weekly"),
        (
            {"cron": "0 2 * * *", "duration": "1h", "weekly": {"days": ["sun"], "start": "02:00",
                                                               "duration": "1h"}},
            "needs exactly one schedule",
        ),
        ({"start": "2026-01-01T00:00", "cron": "0 2 * * *"}, "needs exactly one schedule"),
        ({"cron": "0 2 * * *"}, "needs both cron and duration"),
        ({"duration": "1h"}, "needs both cron and duration"),
        ({"start": "2026-01-01T00:00"}, "needs both start and end"),
        ({"start": "2026-01-02T00:00", "end": "2026-01-01T00:00"}, "ends before it starts"),
        # A local 02:50 on the fall-back day is the first one (CEST): before 02:45 CET.
        ({"time_zone": "Europe/Berlin", "start": "2026-10-25T02:45:00+01:00",
          "end": "2026-10-25T02:50"}, "ends before it starts"),
        ({"cron": "0 2 * *", "duration": "1h"}, "invalid cron expression '0 2 * *'"),
        ({"cron": "0 0 2 * * *", "duration": "1h"}, "use 5 fields"),
        ({"cron": "61 2 * * *", "duration": "1h"}, "invalid cron expression"),
        ({"cron": "@reboot", "duration": "1h"}, "invalid cron expression"),
        ({"cron": "0 0 30 2 *", "duration": "1h"}, "never matches a date"),
        ({"cron": "0 2 * * *", "duration": "0s"}, "duration must be positive"),
        ({"weekly": {"days": ["sun"], "start": "02:00", "duration": "0s"}},
         "duration must be positive"),
        ({"weekly": {"days": [], "start": "02:00", "duration": "1h"}}, "at least 1 item"),
        ({"weekly": {"days": ["sunday"], "start": "02:00", "duration": "1h"}}, "'mon', 'tue'"),
        ({"weekly": {"days": ["sun"], "start": "02:00+01:00", "duration": "1h"}},
         "a time of day here is local, without offset"),
        ({"weekly": {"days": ["sun"], "start": 1320, "duration": "1h"}},
         "quoted string"),
        ({"time_zone": "Europe/Bonn", "cron": "0 2 * * *", "duration": "1h"},
         "unknown time zone 'Europe/Bonn'"),
        ({"cron": "0 2 * * *", "duration": "1h", "matchers": []}, "at least 1 item"),
        ({"cron": "0 2 * * *", "duration": "1h", "after": "later"}, "'notify' or 'drop'"),
        ({"cron": "0 2 * * *", "duration": "1h", "every": "day"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_windows(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        window(**kw)


def test_cron_whitespace_is_normalised() -> None:
    assert window(cron=" 0  2 * *  sun ", duration="1h").cron == "0 2 * * sun"


# --- against a brute-force oracle -----------------------------------------------------------

# The 2026 DST changes (UTC) of three zones, Lord Howe's by 30 minutes, and Kolkata's new year.
CHANGES = [
    ("Europe/Berlin", utc(2026, 3, 29, 1)), ("Europe/Berlin", utc(2026, 10, 25, 1)),
    ("America/New_York", utc(2026, 3, 8, 7)), ("America/New_York", utc(2026, 11, 1, 6)),
    ("Australia/Lord_Howe", utc(2026, 4, 4, 15)), ("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)),
    ("Asia/Kolkata", utc(2026, 12, 31, 18, 30)),
]
CRONS = ["30 2 * * *", "0 1,2,3 * * *", "*/20 1-3 * * *", "15 0 * * mon-fri", "0 22 31 12 *"]


def covered_by_brute_force(win: MaintenanceWindow, at: datetime) -> bool:
    """Every cron match on the wall clock within two days of `at`, as instants."""
    zone, length = win.zone, win.length
    assert win.cron is not None
    around = at.astimezone(zone).replace(tzinfo=None)
    walls = croniter_range(around - length - timedelta(days=2), around + timedelta(days=2),
                           win.cron, ret_type=datetime)
    starts = [w.replace(tzinfo=zone).astimezone(UTC) for w in walls]
    return any(s <= at < s + length for s in starts)


@settings(max_examples=400, deadline=None)
@given(
    change=st.sampled_from(CHANGES),
    cron=st.sampled_from(CRONS),
    minutes=st.sampled_from([1, 30, 45, 60, 90, 150]),
    offset=st.integers(min_value=-6 * 60, max_value=6 * 60),
)
def test_active_at_agrees_with_brute_force(
    change: tuple[str, datetime], cron: str, minutes: int, offset: int
) -> None:
    """Near a DST change, where wall-clock and instant ranges part, active_at agrees with an
    exhaustive scan of the cron's matches."""
    zone, instant = change
    win = window(time_zone=zone, cron=cron, duration=f"{minutes}m")
    at = instant + timedelta(minutes=offset)
    expected = covered_by_brute_force(win, at)
    assert active_at(win, at) is expected
    assert (current_span(win, at) is not None) is expected
