"""Changing an incident's view: fields, details, and timeline entries kept in time order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from router.engine.instant import Instant, utc
from router.engine.state import IncidentState
from router.incidents import TimelineEntry, TimelineKind

TK = TimelineKind
# Alert and notification entries stop being recorded past this many (a flapping group must not
# grow the state without bound); human and escalation events are always recorded.
MAX_TIMELINE = 500
NOISY = frozenset({TK.ALERT_FIRED, TK.ALERT_RESOLVED, TK.NOTIFIED})


def with_view(inc: IncidentState, **update: Any) -> IncidentState:
    return inc.with_(view=inc.view.with_(**update))


def with_details(inc: IncidentState, **items: Any) -> IncidentState:
    return with_view(inc, details={**inc.view.details, **items})


def entry(at: datetime, kind: TimelineKind, actor: str, text: str,
          now: Instant) -> TimelineEntry:
    return TimelineEntry.build(at=utc(at), kind=kind, actor=actor, text=text, recorded_at=now.dt)


def insert(timeline: tuple[TimelineEntry, ...],
           entries: list[TimelineEntry]) -> tuple[TimelineEntry, ...]:
    """`timeline` with `entries` added in order of `at` (after entries of the same time, so
    what was recorded first stays first); noisy entries past MAX_TIMELINE are dropped."""
    out = list(timeline)
    for e in entries:
        if e.kind in NOISY and len(out) >= MAX_TIMELINE:
            continue
        if not out or out[-1].at <= e.at:
            out.append(e)
            continue
        i = len(out)
        while i > 0 and out[i - 1].at > e.at:
            i -= 1
        out.insert(i, e)
    return tuple(out)


def log(inc: IncidentState, at: datetime, kind: TimelineKind, actor: str, text: str,
        now: Instant) -> IncidentState:
    return with_view(inc, timeline=insert(inc.view.timeline, [entry(at, kind, actor, text, now)]))
