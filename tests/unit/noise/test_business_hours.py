"""Business-hours calendars: opening, closing and deferral in Europe/Berlin, America/New_York
and Asia/Kolkata, over weekends, holidays, DST changes and the new year."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from router.noise.business_hours import (
    Calendar,
    defer_until,
    is_open,
    next_closing,
    next_opening,
)
from router.policy import Response
from tests.unit.noise.zones import US, berlin, ist, ny, utc

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
EVERY_DAY = [*WEEKDAYS, "sat", "sun"]


def calendar(**kw: Any) -> Calendar:
    return Calendar.model_validate({"name": "team", **kw})


EU = calendar(
    time_zone="Europe/Berlin",
    hours=[{"days": WEEKDAYS, "start": "09:00", "end": "17:00"}],
    holidays=["2026-04-06", "2026-12-24", "2026-12-25", "2027-01-01"],
)
# Two spans a day (lunch break), Thanksgiving off.
US_EAST = calendar(
    time_zone="America/New_York",
    hours=[
        {"days": WEEKDAYS, "start": "08:00", "end": "12:00"},
        {"days": WEEKDAYS, "start": "13:00", "end": "18:00"},
    ],
    holidays=["2026-11-26"],
)
INDIA = calendar(
    time_zone="Asia/Kolkata", hours=[{"days": [*WEEKDAYS, "sat"], "start": "10:00", "end": "19:00"}]
)
# A night desk: 22:00 to 06:00, Monday night to Saturday morning, as two spans a day.
NIGHTS = calendar(
    time_zone="Europe/Berlin",
    hours=[
        {"days": WEEKDAYS, "start": "22:00", "end": "24:00"},
        {"days": ["tue", "wed", "thu", "fri", "sat"], "start": "00:00", "end": "06:00"},
    ],
)

ALWAYS = calendar(time_zone="Europe/Berlin", hours=[{"days": EVERY_DAY, "start": "00:00",
                                                     "end": "24:00"}])
ALWAYS_BUT_CHRISTMAS = ALWAYS.model_copy(update={"holidays": (date(2026, 12, 25),)})
SUNDAYS = calendar(time_zone="Europe/Berlin", hours=[{"days": ["sun"], "start": "00:00",
                                                      "end": "24:00"}])
# Spans at the DST hours themselves: inside the spring-forward gap, and across it.
GAP_ONLY = calendar(time_zone="Europe/Berlin", hours=[{"days": ["sun"], "start": "02:00",
                                                       "end": "03:00"}])
FROM_0230 = calendar(time_zone="Europe/Berlin", hours=[{"days": ["sun"], "start": "02:30",
                                                        "end": "10:00"}])


@pytest.mark.parametrize(
    ("cal", "at", "expected"),
    [
        (EU, berlin(2026, 12, 2, 9), True),
        (EU, berlin(2026, 12, 2, 9) - US, False),
        (EU, berlin(2026, 12, 2, 16, 59, 59), True),
        (EU, berlin(2026, 12, 2, 17), False),  # half-open
        (EU, berlin(2026, 12, 5, 12), False),  # Saturday
        (EU, berlin(2026, 12, 24, 12), False),  # holiday
        (EU, berlin(2026, 4, 6, 12), False),  # Easter Monday
        # `at` in another zone: 08:30 UTC is 09:30 CET.
        (EU, utc(2026, 12, 2, 8, 30), True),
        # 09:00 local on both sides of the spring-forward weekend: 08:00 UTC, then 07:00 UTC.
        (EU, utc(2026, 3, 27, 7, 30), False),
        (EU, utc(2026, 3, 30, 7, 30), True),
        (US_EAST, ny(2026, 12, 2, 11, 59), True),
        (US_EAST, ny(2026, 12, 2, 12, 30), False),  # lunch
        (US_EAST, ny(2026, 12, 2, 13), True),
        (US_EAST, ny(2026, 11, 26, 10), False),  # Thanksgiving
        (INDIA, ist(2026, 12, 5, 18, 59), True),  # Saturday
        (INDIA, ist(2026, 12, 6, 12), False),  # Sunday
        (NIGHTS, berlin(2026, 12, 1, 23), True),
        (NIGHTS, berlin(2026, 12, 2, 0), True),  # across midnight
        (NIGHTS, berlin(2026, 12, 2, 5, 59), True),
        (NIGHTS, berlin(2026, 12, 2, 6), False),
        (NIGHTS, berlin(2026, 12, 7, 3), False),  # Sunday night into Monday: off
        (ALWAYS, berlin(2026, 3, 29, 2, 30), True),  # any instant, DST or not
        (ALWAYS, berlin(2026, 10, 25, 2, 30, fold=1), True),
        (ALWAYS_BUT_CHRISTMAS, berlin(2026, 12, 25, 12), False),
        # The Sunday span 02:00-03:00 does not happen on spring-forward day ...
        (GAP_ONLY, utc(2026, 3, 29, 0, 59), False),
        (GAP_ONLY, utc(2026, 3, 29, 1), False),
        # ... and happens on other Sundays.
        (GAP_ONLY, berlin(2026, 4, 5, 2, 30), True),
        # A 02:30 opening on spring-forward day opens at 03:30 CEST (the local-time rule).
        (FROM_0230, berlin(2026, 3, 29, 3, 29), False),
        (FROM_0230, berlin(2026, 3, 29, 3, 30), True),
        # On the fall-back day it opens at the first 02:30 and stays open through the repeat.
        (FROM_0230, berlin(2026, 10, 25, 2, 29), False),
        (FROM_0230, berlin(2026, 10, 25, 2, 30), True),
        (FROM_0230, berlin(2026, 10, 25, 2, 15, fold=1), True),
    ],
)
def test_is_open(cal: Calendar, at: datetime, expected: bool) -> None:
    assert is_open(cal, at) is expected


@pytest.mark.parametrize(
    ("cal", "at", "opening"),
    [
        # A SEV3 alert at 03:00 local waits for 09:00 that day.
        (EU, berlin(2026, 12, 2, 3), berlin(2026, 12, 2, 9)),
        # Open now: now.
        (EU, berlin(2026, 12, 2, 10), berlin(2026, 12, 2, 10)),
        (EU, berlin(2026, 12, 2, 9), berlin(2026, 12, 2, 9)),
        # At closing time: the next morning.
        (EU, berlin(2026, 12, 2, 17), berlin(2026, 12, 3, 9)),
        # Friday 18:00 -> Monday 09:00.
        (EU, berlin(2026, 12, 4, 18), berlin(2026, 12, 7, 9)),
        # Easter: Saturday -> Tuesday 09:00, Easter Monday is a holiday.
        (EU, berlin(2026, 4, 4, 12), berlin(2026, 4, 7, 9)),
        # Spring forward over the weekend: Monday 09:00 is 07:00 UTC, not 08:00.
        (EU, berlin(2026, 3, 27, 18), utc(2026, 3, 30, 7)),
        # Fall back over the weekend: Monday 09:00 is 08:00 UTC again.
        (EU, berlin(2026, 10, 23, 18), utc(2026, 10, 26, 8)),
        # Christmas Eve and Day off, then the weekend: Wednesday evening -> Monday.
        (EU, berlin(2026, 12, 23, 17), berlin(2026, 12, 28, 9)),
        # New year: Thursday evening, Friday 1st is a holiday -> Monday 4 January 2027.
        (EU, berlin(2026, 12, 31, 17, 30), berlin(2027, 1, 4, 9)),
        (US_EAST, ny(2026, 12, 2, 12, 30), ny(2026, 12, 2, 13)),
        (US_EAST, ny(2026, 12, 2, 6), ny(2026, 12, 2, 8)),
        # New York's spring forward on Sunday 03-08: Monday 08:00 EDT is 12:00 UTC.
        (US_EAST, ny(2026, 3, 6, 19), utc(2026, 3, 9, 12)),
        # Thanksgiving Thursday -> Friday 08:00 EST (13:00 UTC).
        (US_EAST, ny(2026, 11, 25, 18), utc(2026, 11, 27, 13)),
        # Kolkata: Saturday 19:00 -> Monday 10:00 IST (04:30 UTC).
        (INDIA, ist(2026, 12, 5, 19), utc(2026, 12, 7, 4, 30)),
        (INDIA, ist(2026, 12, 31, 22), ist(2027, 1, 1, 10)),
        (NIGHTS, berlin(2026, 12, 5, 7), berlin(2026, 12, 7, 22)),
        (ALWAYS_BUT_CHRISTMAS, berlin(2026, 12, 25, 3), berlin(2026, 12, 26, 0)),
        # The gap-only span is skipped on spring-forward day: the next Sunday's 02:00.
        (GAP_ONLY, berlin(2026, 3, 28, 12), berlin(2026, 4, 5, 2)),
        (FROM_0230, berlin(2026, 3, 29, 0), utc(2026, 3, 29, 1, 30)),
        # From the repeated hour's second pass (02:00 CET = 01:00 UTC) it is already open.
        # (Expected in UTC: PEP 495 makes an aware time in a repeated hour unequal to any
        # other zone's.)
        (FROM_0230, berlin(2026, 10, 25, 2, 0, fold=1), utc(2026, 10, 25, 1)),
    ],
)
def test_next_opening(cal: Calendar, at: datetime, opening: datetime) -> None:
    found = next_opening(cal, at)
    assert found == opening
    assert is_open(cal, found)
    if found > at:
        assert not is_open(cal, found - US)


@pytest.mark.parametrize(
    ("cal", "at", "closing"),
    [
        (EU, berlin(2026, 12, 2, 10), berlin(2026, 12, 2, 17)),
        (EU, berlin(2026, 12, 2, 18), berlin(2026, 12, 2, 18)),  # closed: now
        (US_EAST, ny(2026, 12, 2, 9), ny(2026, 12, 2, 12)),
        (US_EAST, ny(2026, 12, 2, 14), ny(2026, 12, 2, 18)),
        # A 24:00 end meeting a 00:00 start is one opening, across midnight.
        (NIGHTS, berlin(2026, 12, 1, 23), berlin(2026, 12, 2, 6)),
        (NIGHTS, berlin(2026, 12, 4, 23), berlin(2026, 12, 5, 6)),
        # Open around the clock until the holiday; across the DST change the hours still count.
        (ALWAYS_BUT_CHRISTMAS, berlin(2026, 10, 20, 12), berlin(2026, 12, 25, 0)),
        # A whole Sunday is 23 hours on spring-forward day and 25 on fall-back day.
        (SUNDAYS, berlin(2026, 3, 29, 1), utc(2026, 3, 29, 22)),
        (SUNDAYS, berlin(2026, 10, 25, 1), utc(2026, 10, 25, 23)),
        (INDIA, ist(2026, 12, 31, 18), ist(2026, 12, 31, 19)),
    ],
)
def test_next_closing(cal: Calendar, at: datetime, closing: datetime) -> None:
    found = next_closing(cal, at)
    assert found == closing
    assert not is_open(cal, closing)


def test_never_closes_without_holidays_ahead() -> None:
    assert next_closing(ALWAYS, berlin(2026, 12, 2, 10)) is None
    assert next_closing(ALWAYS_BUT_CHRISTMAS, berlin(2026, 12, 26, 10)) is None


@pytest.mark.parametrize(
    ("response", "at", "deferred"),
    [
        # Paging responses never wait.
        ("page_everyone", berlin(2026, 12, 2, 3), None),
        ("page_oncall", berlin(2026, 12, 5, 3), None),
        # A SEV3 (chat in business hours) at 03:00 waits for 09:00; inside hours it goes now.
        ("chat_business_hours", berlin(2026, 12, 2, 3), berlin(2026, 12, 2, 9)),
        ("chat_business_hours", berlin(2026, 12, 2, 11), None),
        ("chat_business_hours", berlin(2026, 12, 24, 11), berlin(2026, 12, 28, 9)),
        # A SEV4 (backlog) outside hours waits too: Friday evening -> Monday morning.
        ("backlog", berlin(2026, 12, 4, 18), berlin(2026, 12, 7, 9)),
        ("backlog", berlin(2026, 12, 7, 9), None),
    ],
)
def test_defer_until(response: Response, at: datetime, deferred: datetime | None) -> None:
    assert defer_until(response, EU, at) == deferred


def test_results_are_utc() -> None:
    opening = next_opening(EU, berlin(2026, 12, 2, 3))
    assert opening.tzinfo is UTC and opening == utc(2026, 12, 2, 8)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="has no UTC offset"):
        is_open(EU, datetime(2026, 12, 2, 10))


def test_24_00_round_trips() -> None:
    dumped = NIGHTS.model_dump(mode="json")
    assert dumped["hours"][0] == {"days": WEEKDAYS, "start": "22:00:00", "end": "24:00"}
    assert Calendar.model_validate(dumped) == NIGHTS


def test_unquoted_yaml_times_are_refused() -> None:
    entry = yaml.safe_load("{days: [mon], start: 10:00, end: 17:00}")
    assert entry["start"] == 600
    with pytest.raises(ValidationError, match="quoted string"):
        calendar(hours=[entry])
    assert calendar(hours=[yaml.safe_load('{days: [mon], start: "10:00", end: "24:00"}')])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"hours": []}, "at least 1 item"),
        ({"hours": [{"days": ["mon"], "start": "17:00", "end": "09:00"}]},
         "opening hours end 09:00:00 is not after start 17:00:00: split a span over midnight"),
        ({"hours": [{"days": ["mon"], "start": "09:00", "end": "09:00"}]}, "is not after start"),
        ({"hours": [{"days": ["mon"], "start": "24:00", "end": "24:00"}]}, "start"),
        ({"hours": [{"days": ["mon"], "start": "09:00", "end": "25:00"}]}, "end"),
        ({"hours": [{"days": ["monday"], "start": "09:00", "end": "17:00"}]}, "'mon', 'tue'"),
        ({"hours": [{"days": [], "start": "09:00", "end": "17:00"}]}, "at least 1 item"),
        ({"hours": [{"days": ["mon"], "start": "09:00+01:00", "end": "17:00"}]},
         "a time of day here is local, without offset"),
        # YAML reads an unquoted 17:00 as the number 1020: refused, not taken as 00:17.
        ({"hours": [{"days": ["mon"], "start": "09:00", "end": 1020}]},
         'write a time of day as a quoted string, e.g. "17:00"'),
        ({"time_zone": "Mars/Olympus", "hours": [{"days": ["mon"], "start": "09:00",
                                                  "end": "17:00"}]},
         "unknown time zone 'Mars/Olympus'"),
        ({"hours": [{"days": ["mon"], "start": "09:00", "end": "17:00"}],
          "holidays": ["2026-02-30"]}, "holidays.0"),
        ({"hours": [{"days": ["mon"], "start": "09:00", "end": "17:00"}], "open": True},
         "Extra inputs are not permitted"),
    ],
)
def test_invalid_calendars(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        calendar(**kw)
