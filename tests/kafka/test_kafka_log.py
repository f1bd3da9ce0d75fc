"""The Kafka intake log against a real broker: topics, durable appends, broker outages."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from router.backends.base import LogEvent, LogUnavailable
from router.backends.kafka.backend import (
    IntakeGate,
    KafkaBackend,
    KafkaLog,
    TopicLayoutError,
    client_kwargs,
    decode_event,
    ensure_topics,
    init_topics,
    topic_names,
)
from router.config import KafkaBackendConfig
from router.engine.state import EngineContext
from router.metrics import EngineMetrics
from router.model import Alert, AlertEvent, CommandEvent, Status, event_key

pytestmark = pytest.mark.kafka

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def alert_event(fingerprint: str, group_key: str | None = None) -> AlertEvent:
    return AlertEvent(
        alert=Alert(
            source="alertmanager",
            fingerprint=fingerprint,
            status=Status.FIRING,
            name="HighErrorRate",
            labels={"service": "checkout"},
            starts_at=T0,
            received_at=T0,
            group_key=group_key,
        )
    )


async def read_records(cfg: KafkaBackendConfig, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `count` records of the alerts topic from the start, as the engine will: committed."""
    topic = topic_names(cfg.topic_prefix).alerts
    consumer = AIOKafkaConsumer(
        **client_kwargs(cfg), isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(cfg.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while len(records) < count:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()


@pytest.fixture
async def kafka_log(kafka_config: KafkaBackendConfig) -> AsyncIterator[KafkaLog]:
    await ensure_topics(kafka_config)
    log = KafkaLog(kafka_config)
    await log.start()
    yield log
    await log.stop()


async def test_ensure_topics_creates_co_partitioned_topics_with_a_compacted_state_topic(
    kafka_config: KafkaBackendConfig,
) -> None:
    await ensure_topics(kafka_config)
    await ensure_topics(kafka_config)  # a second replica starting up finds them in place

    topics = topic_names(kafka_config.topic_prefix)
    names = [topics.alerts, topics.state, topics.notifications, topics.notifications_dlq]
    admin = AIOKafkaAdminClient(**client_kwargs(kafka_config))
    await admin.start()
    try:
        described = await admin.describe_topics(names)
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})
             for name in names]
        )
    finally:
        await admin.close()

    assert {d["topic"]: len(d["partitions"]) for d in described} == dict.fromkeys(names, 3)
    policies = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}["cleanup.policy"]
        for response in responses
        for resource in response.resources
    }
    assert policies == {
        topics.alerts: "delete",
        topics.state: "compact",
        topics.notifications: "delete",
        topics.notifications_dlq: "compact,delete",
    }


async def topic_settings(cfg: KafkaBackendConfig, keys: list[str]) -> dict[str, dict[str, str]]:
    """`keys` of every topic of the layout, as the broker reports them."""
    admin = AIOKafkaAdminClient(**client_kwargs(cfg))
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(keys))
             for name in topic_names(cfg.topic_prefix).all()])
    finally:
        await admin.close()
    return {resource[3]: {entry[0]: entry[1] for entry in resource[4]}
            for response in responses for resource in response.resources}


async def settled(cfg: KafkaBackendConfig, keys: list[str],
                  done: Callable[[dict[str, dict[str, str]]], bool]) -> dict[str, dict[str, str]]:
    """The settings once `done` holds: a broker applies a config change a moment later."""
    async with asyncio.timeout(30):
        while True:
            settings = await topic_settings(cfg, keys)
            if done(settings):
                return settings
            await asyncio.sleep(0.1)


DAY_MS = 86_400_000


async def test_topics_are_created_with_the_configured_retention(
    kafka_config: KafkaBackendConfig,
) -> None:
    cfg = kafka_config.model_copy(update={
        "log_retention": timedelta(hours=12), "notifications_retention": timedelta(days=2),
        "dead_letters_max_age": timedelta(days=14), "delivery_records_max_age": timedelta(0)})
    await ensure_topics(cfg)

    settings = await topic_settings(cfg, ["cleanup.policy", "retention.ms"])

    t = topic_names(cfg.topic_prefix)
    assert settings[t.alerts] == {"cleanup.policy": "delete", "retention.ms": str(DAY_MS // 2)}
    assert settings[t.notifications] == {"cleanup.policy": "delete",
                                         "retention.ms": str(2 * DAY_MS)}
    assert settings[t.notifications_dlq] == {"cleanup.policy": "compact,delete",
                                             "retention.ms": str(14 * DAY_MS)}
    # An age of 0: compaction alone, nothing deleted by age.
    assert settings[t.delivery_records]["cleanup.policy"] == "compact"
    for name in (t.state, t.alerts_view, t.incidents_view):
        assert settings[name]["cleanup.policy"] == "compact"


async def test_kafka_init_sets_retention_on_existing_topics_and_keeps_other_overrides(
    kafka_config: KafkaBackendConfig,
) -> None:
    t = topic_names(kafka_config.topic_prefix)
    admin = AIOKafkaAdminClient(**client_kwargs(kafka_config))
    await admin.start()
    try:  # as an older version made them, plus an operator's own setting on the log
        await admin.create_topics([
            NewTopic(name, 3, 1, topic_configs={"cleanup.policy": "compact"}
                     if name not in (t.alerts, t.notifications) else {})
            for name in t.all()])
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t.alerts,
                                                  {"max.message.bytes": "2097152"})])
    finally:
        await admin.close()
    keys = ["cleanup.policy", "retention.ms", "max.message.bytes"]
    await settled(kafka_config, keys,
                  lambda s: s[t.alerts].get("max.message.bytes") == "2097152")

    await init_topics(kafka_config.model_copy(update={"log_retention": timedelta(days=3)}))

    settings = await settled(kafka_config, keys,
                             lambda s: s[t.delivery_records].get("cleanup.policy") != "compact")
    assert settings[t.alerts] == {"cleanup.policy": "delete", "retention.ms": str(3 * DAY_MS),
                                  "max.message.bytes": "2097152"}
    assert settings[t.notifications]["retention.ms"] == str(7 * DAY_MS)  # the default
    for name in (t.notifications_dlq, t.delivery_records):
        assert settings[name]["cleanup.policy"] == "compact,delete"
        assert settings[name]["retention.ms"] == str(30 * DAY_MS)
    assert settings[t.state]["cleanup.policy"] == "compact"
    await init_topics(kafka_config.model_copy(  # nothing left to change: a no-op
        update={"log_retention": timedelta(days=3)}))


async def test_ensure_topics_refuses_a_state_topic_with_another_partition_count(
    kafka_config: KafkaBackendConfig,
) -> None:
    admin = AIOKafkaAdminClient(**client_kwargs(kafka_config))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic_names(kafka_config.topic_prefix).state, 2, 1)])
    finally:
        await admin.close()

    with pytest.raises(TopicLayoutError, match="same partition count"):
        await ensure_topics(kafka_config)


async def test_appended_events_are_read_back_keyed_by_group_key(
    kafka_config: KafkaBackendConfig, kafka_log: KafkaLog
) -> None:
    events: list[LogEvent] = [
        alert_event("a1", group_key="checkout/HighErrorRate"),
        alert_event("a2", group_key="checkout/HighErrorRate"),
        alert_event("b1"),
        CommandEvent(command="ack", group_key="checkout/HighErrorRate", actor="alice", at=T0),
    ]

    await kafka_log.append(events)

    records = await read_records(kafka_config, len(events))
    assert sorted((r.key or b"").decode() for r in records) == sorted(
        event_key(e) for e in events
    )
    assert sorted((decode_event(r.value or b"") for r in records), key=repr) == sorted(
        events, key=repr
    )
    group_partitions = {r.partition for r in records if r.key == b"checkout/HighErrorRate"}
    assert len(group_partitions) == 1
    # One key, one partition: the incident's events stay in the order they were appended.
    in_group = sorted((r for r in records if r.key == b"checkout/HighErrorRate"),
                      key=lambda r: r.offset)
    assert [decode_event(r.value or b"") for r in in_group] == [events[0], events[1], events[3]]


async def test_append_of_nothing_is_a_no_op(kafka_log: KafkaLog) -> None:
    await kafka_log.append([])


async def test_append_before_start_is_unavailable(kafka_config: KafkaBackendConfig) -> None:
    with pytest.raises(LogUnavailable):
        await KafkaLog(kafka_config).append([alert_event("x")])


async def test_append_is_unavailable_while_the_broker_is_down_and_recovers_after_restart(
    kafka_broker: Any, kafka_topic_prefix: str
) -> None:
    broker = kafka_broker
    cfg = KafkaBackendConfig(
        bootstrap_servers=[broker.bootstrap],
        topic_prefix=kafka_topic_prefix,
        partitions=3,
        produce_timeout_seconds=2.0,
    )
    await ensure_topics(cfg)
    log = KafkaLog(cfg)
    await log.start()
    try:
        await log.append([alert_event("before")])

        await asyncio.to_thread(broker.stop)
        with pytest.raises(LogUnavailable, match="within 2s") as refused:
            await log.append([alert_event("during")])
        # Not "lost": the producer keeps the batch and may still deliver it (checked below).
        assert refused.value.maybe_stored

        await asyncio.to_thread(broker.start)
        await log.append([alert_event("after")])
    finally:
        await log.stop()

    # The outage lost nothing that was acknowledged; "during" may arrive too (at least once).
    records = await read_records(cfg, 2)
    seen = [decode_event(r.value or b"") for r in records]
    assert alert_event("before") in seen
    assert alert_event("after") in seen


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, {"security_protocol": "PLAINTEXT"}),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
             "sasl_username": "router", "sasl_password": SecretStr("s3cret")},
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
             "sasl_plain_username": "router", "sasl_plain_password": "s3cret"},
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "u",
             "sasl_password": SecretStr("p")},
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
             "sasl_plain_username": "u", "sasl_plain_password": "p", "ssl_context": ssl.SSLContext},
        ),
        ({"security_protocol": "SSL"}, {"security_protocol": "SSL", "ssl_context": ssl.SSLContext}),
    ],
)
def test_client_settings_follow_the_security_protocol(
    settings: dict[str, object], expected: dict[str, object]
) -> None:
    cfg = KafkaBackendConfig(bootstrap_servers=["k1:9092", "k2:9092"], **settings)  # type: ignore[arg-type]

    kwargs = client_kwargs(cfg)

    assert kwargs.pop("bootstrap_servers") == ["k1:9092", "k2:9092"]
    assert {k: type(v) if isinstance(v, ssl.SSLContext) else v for k, v in kwargs.items()} == (
        expected
    )


async def test_the_log_partitions_keys_as_the_default_partitioner(
    kafka_config: KafkaBackendConfig, kafka_log: KafkaLog
) -> None:
    """The log computes (and caches) partitions itself; they must be murmur2's, as every
    co-partitioned topic and every other client expects."""
    events: list[LogEvent] = [alert_event(f"f{i}", group_key=f"svc-{i}/Alert") for i in range(40)]
    await kafka_log.append(events[:1])  # the one-event path
    await kafka_log.append(events[1:])
    await kafka_log.append(events[:1])  # a cached key
    records = await read_records(kafka_config, len(events) + 1)
    everything = list(range(kafka_config.partitions))
    partitioner = DefaultPartitioner()
    assert len(records) == len(events) + 1
    for r in records:
        assert r.key is not None
        assert r.partition == partitioner(r.key, everything, everything)


async def test_an_append_waits_at_the_gate_while_the_pipeline_is_behind(
    kafka_config: KafkaBackendConfig,
) -> None:
    await ensure_topics(kafka_config)
    behind = [True]
    gate = IntakeGate(lambda: behind[0], max_wait=30)
    log = KafkaLog(kafka_config, gate)
    await log.start()
    try:
        append = asyncio.create_task(log.append([alert_event("g1")]))
        await asyncio.sleep(0.3)
        assert not append.done() and gate.waits == 1
        gate.poke()  # progress, but still behind
        await asyncio.sleep(0.1)
        assert not append.done()
        behind[0] = False
        gate.poke()
        await asyncio.wait_for(append, 10)
        assert len(await read_records(kafka_config, 1)) == 1
        await log.append([alert_event("g2")])  # not behind: no wait
        assert gate.waits == 1
    finally:
        await log.stop()


async def test_the_gate_lets_an_append_through_after_max_wait() -> None:
    gate = IntakeGate(lambda: True, max_wait=0.2)  # behind for ever: nothing ever catches up
    waiting = asyncio.create_task(gate.wait())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not waiting.done() and gate.waits == 1  # it does wait...
    await asyncio.wait_for(waiting, 5)  # ...and then lets the append through anyway


@pytest.mark.parametrize(("limits", "lag", "backlog", "behind"), [
    ({}, 0, 0, False),
    ({}, 5_001, 0, True),
    ({}, 0, 5_001, True),
    ({"intake_max_engine_lag": 0}, 1_000_000, 0, False),  # 0: that limit is off
    ({"intake_max_delivery_backlog": 0}, 0, 1_000_000, False),
    ({"intake_max_engine_lag": 10, "intake_max_delivery_backlog": 10}, 11, 0, True),
])
def test_the_gate_limits_come_from_the_config(limits: dict[str, int], lag: int, backlog: int,
                                              behind: bool) -> None:
    cfg = KafkaBackendConfig(bootstrap_servers=["127.0.0.1:9"], **limits)  # type: ignore[arg-type]
    backend = KafkaBackend(cfg, EngineContext(), EngineMetrics(CollectorRegistry()))
    backend.engine.last_lag = lag
    backend.outbox._held = dict.fromkeys(range(backlog))  # type: ignore[assignment]
    assert backend._behind() is behind
