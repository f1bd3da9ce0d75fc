"""Embedded backend: the engine takes the events this process appended from memory, and reads
the log for whatever memory does not hold (a restart, an overflow), deciding each event once,
in log order."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from router.backends.embedded import engine as embedded_engine
from router.backends.embedded.backend import EmbeddedBackend
from router.config import IntakeGateConfig
from router.engine.state import EngineContext
from router.metrics import EngineMetrics
from router.model import Alert, AlertEvent, Severity, Status, utcnow

CTX = EngineContext(default_receivers=("log",))


def fire(i: int, severity: Severity = Severity.SEV3) -> AlertEvent:
    now = utcnow()
    return AlertEvent.of(Alert(
        source="generic", fingerprint=f"fp-{i}", status=Status.FIRING, name=f"Alert{i}",
        starts_at=now, received_at=now, severity=severity, group_key=f"g{i}",
    ))


def backend(path: Path) -> tuple[EmbeddedBackend, CollectorRegistry]:
    registry = CollectorRegistry()
    return EmbeddedBackend(path, CTX, EngineMetrics(registry), synchronous="NORMAL"), registry


async def decided(b: EmbeddedBackend) -> set[str]:
    await b.engine.drained()
    return set(b.engine.engine.keys())


async def position(b: EmbeddedBackend) -> int:
    row = await b.db.read(lambda c: c.execute(
        "SELECT offset FROM engine_position WHERE id = 1").fetchone())
    return int(row[0])


@pytest.mark.parametrize("limit", [100_000, 3])
async def test_concurrent_appends_are_each_decided_once(tmp_path: Path, limit: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # limit 3: memory overflows at once and most events come from the log instead.
    monkeypatch.setattr(embedded_engine, "FRESH_LIMIT", limit)
    b, registry = backend(tmp_path / "r.db")
    await b.start()
    try:
        await asyncio.gather(*(b.log.append([fire(i), fire(i + 1000)]) for i in range(40)))
        assert await decided(b) == {f"g{i}" for i in range(40)} | {
            f"g{i + 1000}" for i in range(40)}
        assert await position(b) == await b.log_size() == 80
        assert registry.get_sample_value("incident_router_engine_events_total") == 80
        assert b.engine._fresh == {}
    finally:
        await b.stop()


async def test_events_appended_before_a_restart_are_read_from_the_log(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    first, _ = backend(path)
    await first.start()
    await first.engine.stop()  # the process dies before its engine decides these
    await first.log.append([fire(1), fire(2)])
    await first.stop()

    second, registry = backend(path)
    await second.start()
    try:
        assert await decided(second) == {"g1", "g2"}
        await second.log.append([fire(3)])  # and new appends come from memory again
        assert await decided(second) == {"g1", "g2", "g3"}
        assert await position(second) == 3
        assert registry.get_sample_value("incident_router_engine_events_total") == 3
    finally:
        await second.stop()


@dataclass
class Delivery:
    """What the backend watches of the Dispatcher (`base.DeliveryProgress`)."""

    backlog: int
    on_done: Callable[[], None] = lambda: None


async def test_an_append_waits_while_delivery_is_behind_and_goes_once_it_catches_up(
        tmp_path: Path) -> None:
    limits = IntakeGateConfig(intake_max_delivery_backlog=10, intake_max_wait_seconds=30)
    b = EmbeddedBackend(tmp_path / "r.db", CTX, EngineMetrics(CollectorRegistry()),
                        synchronous="NORMAL", gate=limits)
    delivery = Delivery(backlog=11)
    b.watch_delivery(delivery)  # as the app does with its Dispatcher
    await b.start()
    try:
        append = asyncio.create_task(b.log.append([fire(1)]))
        await asyncio.sleep(0.2)
        assert not append.done() and await b.log_size() == 0  # nothing appended, no 2xx yet
        delivery.backlog = 10
        delivery.on_done()  # what the Dispatcher does when an item is done
        await asyncio.wait_for(append, 5)
        assert await b.log_size() == 1
    finally:
        await b.stop()


@pytest.mark.parametrize(("limits", "lag", "backlog", "behind"), [
    ({}, 0, 0, False),
    ({}, 5_001, 0, True),
    ({}, 0, 5_001, True),
    ({"intake_max_engine_lag": 0}, 10**6, 0, False),  # 0 turns that limit off
    ({"intake_max_delivery_backlog": 0}, 0, 10**6, False),
])
def test_the_embedded_gate_limits_come_from_the_config(
        tmp_path: Path, limits: dict[str, int], lag: int, backlog: int, behind: bool) -> None:
    b = EmbeddedBackend(tmp_path / "r.db", CTX, EngineMetrics(CollectorRegistry()),
                        gate=IntakeGateConfig(**limits))  # type: ignore[arg-type]
    b.engine._last = lag
    b.delivery_backlog = lambda: backlog
    assert b._behind() is behind


async def test_a_failed_commit_leaves_nothing_and_the_decision_is_retried(tmp_path: Path) -> None:
    b, registry = backend(tmp_path / "r.db")
    failures: list[int] = []

    def fail_once(conn: sqlite3.Connection) -> None:
        if not failures:  # after the step's writes, before its COMMIT: all rolled back
            failures.append(conn.execute("SELECT count(*) FROM engine_state").fetchone()[0])
            raise sqlite3.OperationalError("disk I/O error")

    b.engine.before_commit = fail_once
    await b.start()
    try:
        await b.log.append([fire(1, Severity.SEV1)])  # SEV1: no group wait, a trigger at once
        assert await decided(b) == {"g1"}
        assert failures == [1]  # the failed attempt had written the group's state
        assert registry.get_sample_value(
            "incident_router_engine_transaction_aborts_total") == 1
        assert registry.get_sample_value("incident_router_engine_events_total") == 1
        assert await position(b) == 1
        rows = await b.db.read(lambda c: c.execute(
            "SELECT receiver, group_key FROM outbox").fetchall())
        assert rows == [("log", "g1")]  # decided once: one trigger, not two
    finally:
        await b.stop()
