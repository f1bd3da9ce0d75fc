"""The paging promise on the embedded backend: generated traces of alerts, duplicates, stale
copies, commands, time passing and restarts against a real SQLite database, with the
invariants of tests/support/paging.py checked after every step (the outbox keeps every
notification: no dispatcher runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from router.backends.embedded.backend import EmbeddedBackend
from router.metrics import EngineMetrics
from router.model import AlertEvent, CommandEvent, Notification
from tests.support.paging_trace import Clock, Driver, run_trace
from tests.unit.engine.test_incidents import CTX


class Embedded:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.clock = Clock()
        self.backend: EmbeddedBackend | None = None

    async def start(self) -> None:
        self.backend = EmbeddedBackend(self.path, CTX, EngineMetrics(CollectorRegistry()))
        self.backend.engine.clock = self.clock
        await self.backend.start()
        await self.backend.engine.drained()

    async def stop(self) -> None:
        if self.backend is not None:
            await self.backend.stop()
            self.backend = None

    async def append(self, events: list[AlertEvent | CommandEvent]) -> None:
        assert self.backend is not None
        await self.backend.log.append(list(events))
        await self.backend.engine.drained()

    async def notifications(self) -> list[Notification]:
        assert self.backend is not None
        rows = await self.backend.db.read(
            lambda c: c.execute("SELECT body FROM outbox ORDER BY seq").fetchall())
        return [Notification.model_validate_json(r[0]) for r in rows]

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_one_problem_pages_once_and_stops_when_it_is_over(tmp_path: Path,
                                                                seed: int) -> None:
    router = Embedded(tmp_path / "router.db")
    await router.start()
    try:
        async def incidents() -> list[object]:
            assert router.backend is not None
            return list(await router.backend.incidents(limit=100))

        driver = Driver(router.clock, router.append, router.notifications,
                        incidents, router.restart)  # type: ignore[arg-type]
        assert await run_trace(driver, seed, count=40) == []
    finally:
        await router.stop()
