"""Embedded backend: escalation and SLA timers survive a restart and fire exactly once; the
incident view is written with the engine's commit and read back through the Backend API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from router.backends.embedded.backend import EmbeddedBackend
from router.metrics import EngineMetrics
from router.model import Notification
from tests.support.clock import Clock
from tests.unit.engine.test_incidents import CTX, command, fire


class Router:
    """One embedded backend process on a database file, with an injected clock."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.registry = CollectorRegistry()
        self.backend = EmbeddedBackend(path, CTX, EngineMetrics(self.registry))
        self.backend.engine.clock = clock

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def running() -> AsyncIterator[list[Router]]:
    routers: list[Router] = []
    yield routers
    for r in routers:
        await r.backend.stop()


async def start(running: list[Router], path: Path, clock: Clock) -> Router:
    router = Router(path, clock)
    await router.backend.start()
    await router.backend.engine.drained()
    running.append(router)
    return router


async def stop(running: list[Router], router: Router) -> None:
    running.remove(router)
    await router.backend.stop()


async def outbox(router: Router) -> list[Notification]:
    rows = await router.backend.db.read(
        lambda c: c.execute("SELECT body FROM outbox ORDER BY seq").fetchall())
    return [Notification.model_validate_json(r[0]) for r in rows]


def summary(notes: list[Notification]) -> list[str]:
    return [f"{n.kind.value} {n.receiver} {n.details.get('level') or ''}".strip()
            for n in notes if n.kind.value in ("page", "sla_breach", "escalate")]


async def test_escalation_and_sla_timers_fire_once_across_restarts(
    tmp_path: Path, running: list[Router]
) -> None:
    path = tmp_path / "router.db"
    clock = Clock()
    first = await start(running, path, clock)
    await first.backend.log.append([fire()])
    await first.backend.engine.drained()
    (incident,) = await first.backend.incidents()
    assert incident.escalation_level == 1
    assert summary(await outbox(first)) == ["page pd-page 1"]
    await stop(running, first)

    # Down while the level-1 deadline and the ack SLA pass; both fire once on start.
    clock.set(16)
    second = await start(running, path, clock)
    assert summary(await outbox(second)) == [
        "page pd-page 1", "page pd-page 2", "escalate mgr 2", "escalate slack 2",
        "sla_breach mgr", "sla_breach slack"]
    assert second.metric("incident_router_sla_breaches_total",
                         {"severity": "SEV1", "sla": "ack"}) == 1
    await stop(running, second)

    # Restarted again at the same instant: nothing fires twice.
    third = await start(running, path, clock)
    assert len(summary(await outbox(third))) == 6
    assert third.metric("incident_router_sla_breaches_total",
                        {"severity": "SEV1", "sla": "ack"}) == 0
    view = await third.backend.incident(incident.id)
    assert view is not None and view.escalation_level == 2
    assert view.details["sla_breaches"] == ["ack"]

    # Acknowledged: level 3 is never paged, even after another restart past its deadline.
    await third.backend.log.append([command("ack", 17, incident.id)])
    await third.backend.engine.drained()
    await stop(running, third)
    clock.set(40)
    fourth = await start(running, path, clock)
    pages = [n for n in await outbox(fourth) if n.kind.value == "page"]
    assert [n.details["level"] for n in pages] == [1, 2]
    view = await fourth.backend.incident(incident.id)
    assert view is not None and view.acknowledged_at is not None
    assert view.escalation_level is None


async def test_incident_view_lists_newest_first_and_filters(
    tmp_path: Path, running: list[Router]
) -> None:
    clock = Clock()
    router = await start(running, tmp_path / "router.db", clock)
    backend = router.backend
    await backend.log.append([command("declare", 0, group_key="manual:a", title="First")])
    await backend.engine.drained()
    clock.set(1)
    await backend.log.append([command("declare", 1, group_key="manual:b", title="Second")])
    await backend.engine.drained()
    ids = [i.id for i in await backend.incidents()]
    assert ids == ["INC-20260302-2", "INC-20260302-1"]
    await backend.log.append([command("resolve", 2, "INC-20260302-1", group_key="manual:a")])
    await backend.engine.drained()
    assert [i.id for i in await backend.incidents(status="resolved")] == ["INC-20260302-1"]
    assert [i.id for i in await backend.incidents(status="open")] == ["INC-20260302-2"]
    assert [i.id for i in await backend.incidents(group_key="manual:b")] == ["INC-20260302-2"]
    assert len(await backend.incidents(limit=1)) == 1
    assert await backend.incident("INC-19990101-1") is None
    # A command for an incident nobody knows is counted and changes nothing.
    await backend.log.append([command("ack", 3, "INC-19990101-1", group_key="manual:zzz")])
    await backend.engine.drained()
    assert router.metric("incident_router_engine_unknown_commands_total") == 1
