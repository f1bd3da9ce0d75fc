"""The engine's step both backends run (router.engine.runner): what it commits, with which
position, what it counts, and how a failed commit is recovered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from router.engine.engine import Batch, Engine
from router.engine.runner import Outcome, step, step_safely
from router.engine.state import EngineContext
from router.metrics import EngineMetrics
from router.model import Alert, AlertEvent, NotificationKind, Severity, Status

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CTX = EngineContext(default_receivers=("log",))


def fire(i: int, severity: Severity = Severity.SEV1, at: datetime = T0) -> AlertEvent:
    return AlertEvent.of(Alert(
        source="generic", fingerprint=f"fp-{i}", status=Status.FIRING, name=f"Alert{i}",
        starts_at=at, received_at=at, severity=severity, group_key="g",
    ))


@dataclass
class Store:
    """An `EngineStore` that keeps what was committed and fails the next `fail` commits."""

    fail: int = 0
    commits: list[tuple[Batch, int | None]] = field(default_factory=list)
    recovered: list[Exception] = field(default_factory=list)

    async def commit(self, batch: Batch, position: int | None) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("commit failed")
        self.commits.append((batch, position))

    async def recover(self, error: Exception) -> None:
        self.recovered.append(error)


def metrics() -> tuple[EngineMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return EngineMetrics(registry), registry


async def test_events_are_committed_with_the_position_after_them_and_counted() -> None:
    m, registry = metrics()
    store = Store()
    outcome = await step(Engine(CTX), store, [fire(1), fire(2)], 42, T0, m)
    assert outcome is Outcome.COMMITTED
    ((batch, position),) = store.commits
    assert position == 42
    assert [n.kind for n in batch.notifications] == [NotificationKind.TRIGGER]  # SEV1: at once
    assert registry.get_sample_value("incident_router_engine_events_total") == 2
    assert registry.get_sample_value(
        "incident_router_engine_notifications_total", {"kind": "trigger"}) == 1


async def test_no_events_and_no_due_timer_commit_nothing() -> None:
    m, registry = metrics()
    store = Store()
    assert await step(Engine(CTX), store, [], None, T0, m) is Outcome.IDLE
    assert store.commits == []
    assert registry.get_sample_value("incident_router_engine_events_total") == 0


async def test_a_due_timer_alone_commits_without_a_position() -> None:
    m, _ = metrics()
    engine, store = Engine(CTX), Store()
    await step(engine, store, [fire(1, Severity.SEV3)], 1, T0, m)  # SEV3: waits 30 s
    assert store.commits[0][0].notifications == []
    assert await step(engine, store, [], None, T0 + timedelta(seconds=31), m) \
        is Outcome.COMMITTED
    batch, position = store.commits[1]
    assert position is None
    assert [n.kind for n in batch.notifications] == [NotificationKind.TRIGGER]


async def test_undecodable_records_still_move_the_position() -> None:
    # Kafka: a batch of records none of which decoded is committed for its position alone.
    m, _ = metrics()
    store = Store()
    assert await step(Engine(CTX), store, [], 7, T0, m) is Outcome.COMMITTED
    assert store.commits[0][1] == 7 and store.commits[0][0].empty


@pytest.mark.parametrize(("received", "step_at", "in_trigger"), [
    # Received before the group's timer was due (T0+30 s), decided after it: included.
    (29, 31, 2),
    # Received after the timer was due, decided in the same step: not included (an update).
    (30.5, 31, 1),
    # Received after the timer was due, the step long after: still not included.
    (30.5, 600, 1),
    # Received right at the deadline: the timer fires first.
    (30, 31, 1),
])
async def test_a_timer_fires_between_the_events_by_their_received_times(
        received: float, step_at: float, in_trigger: int) -> None:
    """Both backends' step: what a due timer sends depends on when the events were received,
    not on whether the step ran before or after the timer was due."""
    m, _ = metrics()
    engine, store = Engine(CTX), Store()
    await step(engine, store, [fire(1, Severity.SEV3)], 1, T0, m)  # group wait until T0+30s
    late = fire(2, Severity.SEV3, at=T0 + timedelta(seconds=received))
    await step(engine, store, [late], 2, T0 + timedelta(seconds=step_at), m)
    trigger = store.commits[1][0].notifications[0]
    assert trigger.kind is NotificationKind.TRIGGER
    assert trigger.created_at == T0 + timedelta(seconds=30)
    assert len(trigger.alerts) == in_trigger
    rest = [n.kind for n in store.commits[1][0].notifications[1:]]
    # The second alert was left out: an update carries it a group_interval (5 min) later.
    assert rest == ([NotificationKind.UPDATE] if in_trigger == 1 and step_at >= 330 else [])


async def test_a_step_decides_as_the_same_events_one_step_each() -> None:
    """A lagging step (one batch, long after) sends what steps at each event's time send."""
    events = [fire(1, Severity.SEV3), fire(2, Severity.SEV3, at=T0 + timedelta(seconds=29)),
              fire(3, Severity.SEV3, at=T0 + timedelta(seconds=31))]
    m, _ = metrics()
    each, lagging = Store(), Store()
    engine = Engine(CTX)
    for i, e in enumerate(events):
        await step(engine, each, [e], i, e.alert.received_at, m)
    await step(engine, each, [], None, T0 + timedelta(minutes=6), m)
    await step(Engine(CTX), lagging, events, 2, T0 + timedelta(minutes=6), m)
    sent = [n for batch, _ in each.commits for n in batch.notifications]
    assert [n.kind for n in sent] == [NotificationKind.TRIGGER, NotificationKind.UPDATE]
    assert lagging.commits[0][0].notifications == sent


async def test_a_failed_commit_is_counted_and_recovered_and_nothing_else_counted() -> None:
    m, registry = metrics()
    store = Store(fail=1)
    assert await step_safely(Engine(CTX), store, [fire(1)], 1, T0, m) is Outcome.FAILED
    assert [str(e) for e in store.recovered] == ["commit failed"]
    assert store.commits == []
    assert registry.get_sample_value("incident_router_engine_transaction_aborts_total") == 1
    assert registry.get_sample_value("incident_router_engine_events_total") == 0
    # The store rebuilt the engine (here: a fresh one); the same events come again, once.
    assert await step_safely(Engine(CTX), store, [fire(1)], 1, T0, m) is Outcome.COMMITTED
    assert registry.get_sample_value("incident_router_engine_events_total") == 1


async def test_step_raises_what_the_commit_raised() -> None:
    m, _ = metrics()
    with pytest.raises(OSError, match="commit failed"):
        await step(Engine(CTX), Store(fail=1), [fire(1)], 1, T0, m)
