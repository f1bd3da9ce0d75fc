"""Decisions are a function of the events and their recorded times, not of batching
(`Engine.apply`, docs/architecture.md): the same stream of events, split at any batch boundaries
and stepped at any engine times between them, sends exactly the notifications (ids, incident
ids and contents) that deciding each event alone at its own time sends, and leaves the same
state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.config import IncidentsConfig
from router.engine.engine import CATCH_UP_SECONDS, Engine
from router.engine.state import EngineContext
from router.model import Alert, AlertEvent, AlertsEvent, Notification, Severity, Status

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# SEV1: group_wait 0; SEV3: group_wait 30 s, group_interval 5 min, repeat 4 h (the policy's).
CTX = EngineContext(default_receivers=("log",), incidents=IncidentsConfig())
END = timedelta(days=2)  # after the last event: every timer of the stream has fired
CATCH_UP = timedelta(seconds=CATCH_UP_SECONDS)


def alert(i: int, group: int, severity: Severity, firing: bool, at: datetime) -> Alert:
    return Alert(
        source="generic", fingerprint=f"fp-{group}-{i}", name=f"Alert{i}",
        status=Status.FIRING if firing else Status.RESOLVED,
        starts_at=T0, ends_at=None if firing else at, received_at=at,
        severity=severity, group_key=f"g{group}",
    )


Change = tuple[int, int, Severity, bool, int]  # alert, group, severity, firing, alerts joined


def events_of(changes: list[Change], gaps: list[float]) -> list[AlertEvent | AlertsEvent]:
    """One event per change, received `gaps` apart (strictly later each: events recorded at the
    same instant are decided together, see `Engine.apply`)."""
    out: list[AlertEvent | AlertsEvent] = []
    at = T0
    for (i, group, severity, firing, joined), gap in zip(changes, gaps, strict=True):
        at += timedelta(seconds=gap)
        alerts = tuple(alert(i + k, group, severity, firing, at) for k in range(joined))
        out.append(AlertEvent.of(alerts[0]) if joined == 1 else AlertsEvent.of(alerts))
    return out


def received(event: AlertEvent | AlertsEvent) -> datetime:
    return event.alert.received_at if isinstance(event, AlertEvent) else (
        event.alerts[0].received_at)


def sent(notes: list[Notification]) -> list[tuple[object, ...]]:
    return [(n.id, n.kind, n.receiver, n.group_key, n.incident_id, n.created_at,
             tuple((a.key, a.status) for a in n.alerts), n.details.get("reasons"))
            for n in notes]


def finish(engine: Engine, last: datetime) -> list[Notification]:
    """The timers due within `CATCH_UP` of the last event at their deadlines, then the rest (an
    engine far behind sends what is due at once, at the time it runs)."""
    return (engine.apply([], last + CATCH_UP).notifications
            + engine.apply([], T0 + END).notifications)


def one_at_a_time(events: list[AlertEvent | AlertsEvent]) -> tuple[list[Notification], Engine]:
    engine = Engine(CTX)
    notes: list[Notification] = []
    for e in events:
        notes += engine.apply([e], received(e)).notifications
    notes += finish(engine, received(events[-1]))
    return notes, engine


def batched(events: list[AlertEvent | AlertsEvent], cuts: list[bool],
            lags: list[float]) -> tuple[list[Notification], Engine]:
    """`events` in batches ending where `cuts` says, each decided at an engine time a fraction
    `lags` of the way from its last event to the next batch's first (the last batch: at most
    `CATCH_UP` after its last event, the lag within which timers fire at their deadlines)."""
    engine = Engine(CTX)
    notes: list[Notification] = []
    batch: list[AlertEvent | AlertsEvent] = []
    for k, e in enumerate(events):
        batch.append(e)
        if cuts[k] or k == len(events) - 1:
            last = received(e)
            nxt = received(events[k + 1]) if k + 1 < len(events) else last + CATCH_UP
            now = last + (nxt - last) * lags[k]
            notes += engine.apply(batch, now).notifications
            batch = []
    notes += finish(engine, received(events[-1]))
    return notes, engine


change = st.tuples(st.integers(0, 3), st.integers(0, 1),
                   st.sampled_from([Severity.SEV1, Severity.SEV2, Severity.SEV3]),
                   st.booleans(), st.sampled_from([1, 1, 1, 2]))
# Seconds between events: same-millisecond bursts up to several group intervals.
gap = st.one_of(st.floats(0.001, 2.0), st.floats(2.0, 40.0), st.floats(40.0, 890.0))  # < CATCH_UP


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.lists(change, min_size=1, max_size=14))
def test_batching_and_step_times_do_not_change_what_is_decided(
        data: st.DataObject, changes: list[Change]) -> None:
    n = len(changes)
    events = events_of(changes, data.draw(st.lists(gap, min_size=n, max_size=n)))
    cuts = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    lags = data.draw(st.lists(st.floats(0.0, 0.999), min_size=n, max_size=n))
    expected, reference = one_at_a_time(events)
    got, engine = batched(events, cuts, lags)
    assert sent(got) == sent(expected)
    assert engine.stored() == reference.stored()


def test_one_batch_decides_as_events_one_at_a_time() -> None:
    # A SEV3 group (group_wait 30 s, group_interval 5 min): a first alert, a second before its
    # group_wait ends, a third after it; one batch decided 6 minutes after the first.
    events = events_of([(0, 0, Severity.SEV3, True, 1), (1, 0, Severity.SEV3, True, 1),
                        (2, 0, Severity.SEV3, True, 1)], [0.0, 29.0, 2.0])
    expected, _ = one_at_a_time(events)
    engine = Engine(CTX)
    got = engine.apply(events, T0 + timedelta(minutes=6)).notifications
    trigger, update = (n for n in got if n.receiver == "log")
    assert [a.fingerprint for a in trigger.alerts] == ["fp-0-0", "fp-0-1"]
    assert trigger.created_at == T0 + timedelta(seconds=30)  # at its deadline, not the step's
    assert [a.fingerprint for a in update.alerts] == ["fp-0-0", "fp-0-1", "fp-0-2"]
    assert update.created_at == T0 + timedelta(minutes=5, seconds=30)
    assert sent(got) == sent(expected[:len(got)])
