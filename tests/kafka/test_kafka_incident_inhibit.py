"""Kafka backend: the incident inhibition rule across partitions. The SEV1 incident's group
and a lower-severity alert of the same service live on different partitions; the engine that
opens the incident writes the fact to every partition (after its commit), so the other
engine keeps the alert quiet and sends the timeline note back to the incident's partition;
resolving the incident lets the alert notify. A storm of SEV1 incidents of one service costs
each engine one announcement, not one per incident."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from router.backends.kafka.topics import decode_event, topic_names
from router.config import KafkaBackendConfig
from router.engine.noise import INCIDENT_INHIBITS
from router.model import AlertEvent, CommandEvent, Severity
from tests.kafka.test_kafka_engine import eventually, notifications, read_topic
from tests.kafka.test_kafka_paging import Replica
from tests.unit.engine.test_incidents import KEY, command, fire

pytestmark = pytest.mark.kafka


def other_partition_alert(partitions: int) -> AlertEvent:
    """A SEV3 alert of checkout whose group is on another partition than KEY's."""
    every = list(range(partitions))
    part = DefaultPartitioner()
    home = part(KEY.encode(), every, every)
    for i in range(100):
        name = f"LatencyHigh{i}"
        if part(f"{name}|checkout".encode(), every, every) != home:
            alert = fire(Severity.SEV3, "b", 1).alert.replace(name=name)
            return AlertEvent(alert=alert)
    raise AssertionError("no key on another partition")


async def settle(replica: Replica) -> None:
    assert replica.backend is not None
    await replica.backend.engine.drained()
    await replica.backend.commands_appended()
    await replica.backend.engine.drained()


async def test_an_open_sev1_incident_inhibits_a_lower_severity_alert_on_another_partition(
        kafka_config: KafkaBackendConfig) -> None:
    replica = Replica(kafka_config)
    await replica.start()
    try:
        assert replica.backend is not None
        await replica.append([fire()])
        await settle(replica)  # the incident's broadcast is appended and decided too
        (incident,) = await replica.incidents()
        low = other_partition_alert(kafka_config.partitions)
        replica.clock.set(1)
        await replica.append([low])
        await settle(replica)  # the timeline note too
        replica.clock.set(5)  # past SEV3's group_wait
        await settle(replica)

        async def noted() -> bool:
            (inc,) = await replica.incidents()
            return any(e.kind.value == "quieted" and low.alert.name in e.text
                       for e in inc.timeline)

        await eventually(noted)
        assert not [n for n in await notifications(kafka_config)
                    if n.group_key != KEY]

        replica.clock.set(10)
        await replica.append([command("resolve", 10, incident.id, note="fixed")])

        async def triggered() -> bool:
            await settle(replica)
            return any(n.group_key != KEY and n.kind.value == "trigger"
                       for n in await notifications(kafka_config))

        await eventually(triggered)
    finally:
        await replica.stop()


async def test_a_storm_of_sev1_incidents_of_one_service_is_a_few_broadcast_records(
        kafka_config: KafkaBackendConfig) -> None:
    """N SEV1 incidents of checkout, each decided on its own: each partition's engine
    announces its lead once, so the alerts log holds at most P x P announcement records (each
    to every partition), where one per incident would be N x P."""
    n, partitions = 24, kafka_config.partitions
    replica = Replica(kafka_config)
    await replica.start()
    try:
        for i in range(n):
            alert = fire(fp=f"s{i}", start=0).alert.replace(name=f"Down{i}")
            await replica.append([AlertEvent(alert=alert)])
            await settle(replica)
        assert len(await replica.incidents()) == n
        records = await read_topic(kafka_config, topic_names(kafka_config.topic_prefix).alerts)
        announced = [e for e in (decode_event(r.value) for r in records)
                     if isinstance(e, CommandEvent) and e.command == INCIDENT_INHIBITS]
        assert announced, "the incidents were announced"
        assert len(announced) <= partitions * partitions < n
        assert {tuple(e.args["leads"]) for e in announced} == {("checkout",)}
    finally:
        await replica.stop()
