"""Kafka backend: one daily digest for the cluster (issue 15). SEV4 groups on every partition
of the alerts log go into the digest; each partition's engine writes its entries to the
partition that owns the digest key in the transaction of its decision, and that partition's
engine sends one summary at `digest.at` with all of them, also after a rebalance moved the
partitions to another replica and the first one stopped."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from router.backends.factory import engine_context
from router.backends.kafka.backend import KafkaBackend
from router.backends.kafka.topics import decode_event, topic_names
from router.config import KafkaBackendConfig, parse_config
from router.engine.digest import DIGEST_GROUP, ITEMS
from router.engine.state import EngineContext
from router.metrics import EngineMetrics
from router.model import Alert, AlertEvent, CommandEvent, Severity, Status
from tests.kafka.test_kafka_engine import eventually, notifications, read_topic
from tests.support.clock import Clock
from tests.unit.engine.test_digest import config
from tests.unit.engine.test_incidents import T0

pytestmark = pytest.mark.kafka


def sev4_alerts(partitions: int, per_partition: int = 2) -> list[AlertEvent]:
    """SEV4 alerts of billing, each its own group, `per_partition` on every partition."""
    every = list(range(partitions))
    part = DefaultPartitioner()
    found: dict[int, list[str]] = {p: [] for p in every}
    for i in range(1000):
        name = f"CertExpires{i}"
        p = part(f"{name}|billing".encode(), every, every)
        if len(found[p]) < per_partition:
            found[p].append(name)
        if all(len(v) == per_partition for v in found.values()):
            break
    return [AlertEvent(alert=Alert(source="alertmanager", fingerprint=name, status=Status.FIRING,
                                   name=name, starts_at=T0, received_at=T0,
                                   severity=Severity.SEV4, service="billing"))
            for names in found.values() for name in names]


async def started(cfg: KafkaBackendConfig, ctx: EngineContext, clock: Clock) -> KafkaBackend:
    backend = KafkaBackend(cfg, ctx, EngineMetrics(CollectorRegistry()), clock=clock)
    await backend.start()
    return backend


async def digest_entries(cfg: KafkaBackendConfig) -> set[str]:
    """The group keys the engines wrote to the digest's partition so far."""
    out: set[str] = set()
    for r in await read_topic(cfg, topic_names(cfg.topic_prefix).alerts):
        event = decode_event(r.value)
        if isinstance(event, CommandEvent) and event.command == ITEMS:
            out |= set(event.args["entries"])
    return out


async def test_one_digest_a_day_with_every_partitions_items_through_a_rebalance(
        kafka_config: KafkaBackendConfig) -> None:
    ctx = engine_context(parse_config(yaml.safe_dump(config())))
    clock = Clock()
    alerts = sev4_alerts(kafka_config.partitions)
    keys = {f"{a.alert.name}|billing" for a in alerts}
    first = await started(kafka_config, ctx, clock)
    running = [first]
    try:
        await first.wait_ready()
        await first.log.append(list(alerts))
        await first.engine.drained()
        clock.set(60)  # past SEV4's group_wait: the groups' first rounds go to the digest

        async def all_written() -> bool:
            return await digest_entries(kafka_config) == keys

        await eventually(all_written)
        await first.engine.drained()  # and decided by the digest's engine
        assert not [n for n in await notifications(kafka_config)]  # nobody paged

        # Another replica joins (a rebalance), the first stops: the second owns everything.
        second = await started(kafka_config, ctx, clock)
        running.append(second)
        running.remove(first)
        await first.stop()
        await second.wait_ready()
        await eventually(lambda: sorted(second.engine.owned) == list(range(
            kafka_config.partitions)))

        clock.now = T0 + timedelta(days=1)  # 09:00 the next day: the digest time

        async def sent() -> bool:
            return any(n.group_key == DIGEST_GROUP for n in await notifications(kafka_config))

        await eventually(sent)
        clock.now = T0 + timedelta(days=1, minutes=30)
        await second.engine.drained()
        digests = [n for n in await notifications(kafka_config)
                   if n.group_key == DIGEST_GROUP]
        assert len(digests) == 1, [n.title for n in digests]
        (digest,) = digests
        assert digest.receiver == "digest-hook"
        assert digest.title == f"Daily digest: {len(keys)} alert groups, {len(keys)} still firing"
        assert {row["title"] for row in digest.details["digest"]} == {
            f"{a.alert.name} (billing)" for a in alerts}
        assert [n for n in await notifications(kafka_config) if n.group_key != DIGEST_GROUP] == []
    finally:
        for backend in running:
            await backend.stop()
