"""Kafka backend: incident escalation and SLA timers survive a restart and fire exactly once;
the incident view topic is read by every replica; ids never collide across partitions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from router.backends.kafka.backend import KafkaBackend
from router.config import KafkaBackendConfig
from router.metrics import EngineMetrics
from router.model import Notification
from tests.kafka.test_kafka_engine import eventually, notifications
from tests.support.clock import Clock
from tests.unit.engine.test_incidents import CTX, command, fire

pytestmark = pytest.mark.kafka


class Replica:
    def __init__(self, cfg: KafkaBackendConfig, clock: Clock) -> None:
        self.registry = CollectorRegistry()
        self.backend = KafkaBackend(cfg, CTX, EngineMetrics(self.registry), clock=clock)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for r in started:
        await r.backend.stop()


async def start(replicas: list[Replica], cfg: KafkaBackendConfig, clock: Clock) -> Replica:
    replica = Replica(cfg, clock)
    await replica.backend.start()
    replicas.append(replica)
    await replica.backend.wait_ready()
    return replica


async def stop(replicas: list[Replica], replica: Replica) -> None:
    replicas.remove(replica)
    await replica.backend.stop()


def pages(notes: list[Notification]) -> list[int]:
    return sorted(int(n.details["level"]) for n in notes if n.kind.value == "page")


def breaches(notes: list[Notification]) -> list[str]:
    return sorted(f"{n.details['sla']} {n.receiver}" for n in notes
                  if n.kind.value == "sla_breach")


async def test_escalation_and_sla_timers_fire_once_across_restarts(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    clock = Clock()
    first = await start(replicas, kafka_config, clock)
    await first.backend.log.append([fire()])
    await first.backend.engine.drained()
    (incident,) = await first.backend.incidents()
    # N = seq * partitions + partition + 1: the first incident of its partition.
    assert incident.id in {f"INC-20260302-{p + 1}" for p in range(kafka_config.partitions)}
    assert pages(await notifications(kafka_config)) == [1]
    await stop(replicas, first)

    clock.set(16)  # level 1's 15 minutes and the ack SLA passed while nobody ran
    second = await start(replicas, kafka_config, clock)

    async def escalated() -> bool:
        return pages(await notifications(kafka_config)) == [1, 2]

    await eventually(escalated)
    await eventually(lambda: second.metric(
        "incident_router_sla_breaches_total", {"severity": "SEV1", "sla": "ack"}) == 1)
    await stop(replicas, second)

    # Another owner at the same instant: restores the fired timers, fires nothing again,
    # and reads the incident from the incidents-view topic.
    third = await start(replicas, kafka_config, clock)
    await asyncio.sleep(2)  # a couple of engine loop turns (each waits at most 1 s)
    notes = await notifications(kafka_config)
    assert pages(notes) == [1, 2]
    assert breaches(notes) == ["ack mgr", "ack slack"]
    view = await third.backend.incident(incident.id)
    assert view is not None
    assert (view.escalation_level, view.details["sla_breaches"]) == (2, ["ack"])

    # Acknowledged through the log (as the API appends it): escalation stops for good.
    await third.backend.log.append([command("ack", 17, incident.id)])
    await third.backend.engine.drained()
    clock.set(45)
    await asyncio.sleep(2)
    assert pages(await notifications(kafka_config)) == [1, 2]
    await eventually(lambda: _acked(third, incident.id))


async def _acked(replica: Replica, incident_id: str) -> bool:
    view = await replica.backend.incident(incident_id)
    return view is not None and view.acknowledged_at is not None


async def test_every_replica_lists_incidents_declared_on_any_partition(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    clock = Clock()
    a = await start(replicas, kafka_config, clock)
    b = await start(replicas, kafka_config, clock)
    declares = [command("declare", 0, group_key=f"manual:{i}", title=f"Incident {i}")
                for i in range(8)]
    await a.backend.log.append(declares)
    await a.backend.engine.drained()

    async def listed(r: Replica) -> bool:
        return len(await r.backend.incidents()) == len(declares)

    for r in (a, b):
        await eventually(lambda r=r: listed(r))  # type: ignore[misc]
    ids = [i.id for i in await b.backend.incidents()]
    assert len(set(ids)) == len(declares)
    one = await b.backend.incidents(group_key="manual:3")
    assert [i.title for i in one] == ["Incident 3"]
