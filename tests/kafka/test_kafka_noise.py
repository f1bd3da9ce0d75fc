"""Kafka backend: a silence is a noise command written to every partition, so every engine
holds it, alerts of groups on any partition are kept quiet, and a replica that takes the
partitions over (restarted, restored from the changelog) honours it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from router.config import KafkaBackendConfig
from router.model import AlertEvent
from tests.kafka.test_kafka_engine import eventually, notifications
from tests.kafka.test_kafka_paging import Replica
from tests.unit.engine.test_incidents import fire
from tests.unit.engine.test_noise_commands import silence

pytestmark = pytest.mark.kafka


def alerts(n: int) -> list[AlertEvent]:
    # Distinct services: distinct group keys, spread over the partitions.
    return [fire(fp=f"a{i}", service=f"svc-{i}") for i in range(n)]


async def test_a_silence_reaches_every_partition_and_survives_a_new_owner(
        kafka_config: KafkaBackendConfig) -> None:
    replica = Replica(kafka_config)
    await replica.start()
    try:
        await replica.append([silence(-1, 60, '{alertname="HighErrorRate"}')])
        assert replica.backend is not None
        assert [s.id for s in await replica.backend.silences()] == ["s-1"]
        owned = replica.backend.engine.owned
        assert len(owned) == kafka_config.partitions
        events = alerts(12)
        await replica.append(list(events))
        await asyncio.sleep(1.5)  # a couple of engine turns
        assert await notifications(kafka_config) == []

        await replica.restart()  # the new owner restores the silence with the groups
        assert replica.backend is not None
        assert [s.id for s in await replica.backend.silences()] == ["s-1"]
        await replica.append(alerts(12))  # re-sent: still quiet
        await asyncio.sleep(1.5)
        assert await notifications(kafka_config) == []

        # Expired: every group's alert notifies once.
        replica.clock.set(30)
        await replica.append([silence(-1, 30)])

        async def triggered() -> set[str]:
            return {n.group_key for n in await notifications(kafka_config)
                    if n.kind.value == "trigger" and n.receiver == "slack"}

        await eventually(lambda: _all_twelve(triggered))
        assert len(await triggered()) == 12
    finally:
        await replica.stop()


async def _all_twelve(triggered: Callable[[], Awaitable[set[str]]]) -> bool:
    return len(await triggered()) == 12
