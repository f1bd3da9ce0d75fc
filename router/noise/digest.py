"""When the daily digest goes out, and where severities routed away from paging go. Pure.

A severity whose policy says `route: digest` (SEV4: "next sprint") is not sent to its
receivers: its notifications are collected and sent as one summary a day, at `digest.at` on
the wall clock of `digest.time_zone`, to `digest.receivers`. `route: ticket` sends its
notifications to `tickets.receivers` (a JSM or webhook receiver that files tickets) instead of
the alerts' own receivers.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import Field

from router.model import Frozen
from router.noise.localtime import LocalTime, instant, require_aware, wall_clock
from router.oncall import TimeZoneName


class DigestConfig(Frozen):
    """`digest:` in router.yaml."""

    receivers: tuple[str, ...] = ()
    at: LocalTime = time(9, 0)  # local time of day of the summary
    time_zone: TimeZoneName = "UTC"


class TicketsConfig(Frozen):
    """`tickets:` in router.yaml."""

    receivers: tuple[str, ...] = Field(default=())


def next_send(cfg: DigestConfig, after: datetime) -> datetime:
    """The first digest time strictly after `after` (aware): `at` on the local day of `after`
    if still ahead, else the next day's; a time a DST change skips or repeats is read as the
    noise calendars read it (`router.noise.localtime`)."""
    after = require_aware(after)
    zone = ZoneInfo(cfg.time_zone)
    day = wall_clock(zone, after).date()
    for offset in range(3):  # today, tomorrow; a DST shift may need one more day
        when = instant(zone, datetime.combine(day + timedelta(days=offset), cfg.at))
        if when > after:
            return when
    raise AssertionError("unreachable: some day's digest time is ahead")
