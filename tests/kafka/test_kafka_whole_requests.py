"""Kafka backend: a decision must not depend on where a fetch of the log ends. Alertmanager
sends a group's alerts in one request; intake writes them as one record, so even an engine
that takes three records a round gives each group one first trigger carrying all of them."""

from __future__ import annotations

import pytest

from router.config import KafkaBackendConfig
from router.model import AlertEvent, decided_whole
from tests.kafka.test_kafka_engine import (  # noqa: F401 (the fixture)
    Replica,
    eventually,
    notifications,
    replicas,
    start,
)
from tests.unit.engine.test_incidents import fire

pytestmark = pytest.mark.kafka


def request_of(group: int) -> list[AlertEvent]:
    return [fire(fp=f"g{group}-{i}", service=f"svc-{group}") for i in range(10)]


async def test_each_groups_first_trigger_carries_all_its_alerts(
        kafka_config: KafkaBackendConfig, replicas: list[Replica]) -> None:  # noqa: F811
    replica = await start(replicas, kafka_config)
    replica.backend.engine._batch_size = 3  # rounds end inside what the requests sent
    await replica.backend.wait_ready()
    for group in range(20):
        await replica.backend.log.append(decided_whole(request_of(group)))

    async def triggers() -> dict[str, int]:
        return {n.group_key: len(n.alerts) for n in await notifications(kafka_config)
                if n.kind.value == "trigger" and n.receiver == "slack"}

    await eventually(lambda: _count(triggers, 20))
    got = await triggers()
    assert sorted(got.values()) == [10] * 20
    updates = [n for n in await notifications(kafka_config) if n.kind.value == "update"]
    assert updates == []


async def _count(probe, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await probe()) >= n
