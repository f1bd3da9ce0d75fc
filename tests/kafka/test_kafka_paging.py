"""The paging promise on the Kafka backend: the generated traces of
tests/unit/backends/test_embedded_paging.py against the real broker, with replica restarts
(a new owner restores from the changelog), the invariants checked after every step."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from router.backends.kafka.backend import KafkaBackend
from router.config import KafkaBackendConfig
from router.incidents import Incident
from router.metrics import EngineMetrics
from router.model import AlertEvent, CommandEvent, Notification
from tests.kafka.test_kafka_engine import notifications
from tests.support.paging_trace import Clock, Driver, run_trace
from tests.unit.engine.test_incidents import CTX

pytestmark = pytest.mark.kafka


class Replica:
    def __init__(self, cfg: KafkaBackendConfig) -> None:
        self.cfg = cfg
        self.clock = Clock()
        self.backend: KafkaBackend | None = None

    async def start(self) -> None:
        self.backend = KafkaBackend(self.cfg, CTX, EngineMetrics(CollectorRegistry()),
                                    clock=self.clock)
        await self.backend.start()
        await self.backend.wait_ready()

    async def stop(self) -> None:
        if self.backend is not None:
            await self.backend.stop()
            self.backend = None

    async def append(self, events: list[AlertEvent | CommandEvent]) -> None:
        assert self.backend is not None
        await self.backend.log.append(list(events))
        await self.backend.engine.drained()

    async def notifications(self) -> list[Notification]:
        return await notifications(self.cfg)

    async def incidents(self) -> list[Incident]:
        assert self.backend is not None
        return list(await self.backend.incidents(limit=100))

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@pytest.mark.parametrize("seed", [1, 2])
async def test_one_problem_pages_once_and_stops_when_it_is_over(
    kafka_config: KafkaBackendConfig, seed: int
) -> None:
    replica = Replica(kafka_config)
    await replica.start()
    try:
        driver = Driver(replica.clock, replica.append, replica.notifications,
                        replica.incidents, replica.restart)
        assert await run_trace(driver, seed, count=25) == []
    finally:
        await replica.stop()
