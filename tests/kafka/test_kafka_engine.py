"""The Kafka backend's engine against a real broker: one decision per incident across replicas,
restarts and aborted transactions; readiness; the current-alerts view on every replica."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from router.backends.kafka.backend import KafkaBackend, KafkaLog, client_kwargs, topic_names
from router.backends.kafka.engine import POSITION_KEY, KafkaEngineRunner
from router.config import KafkaBackendConfig
from router.engine.state import EngineContext
from router.metrics import EngineMetrics
from router.model import (
    Alert,
    AlertEvent,
    Notification,
    NotificationKind,
    Severity,
    Status,
    event_key,
    utcnow,
)
from router.policy import SeverityPolicies, SeverityPolicy

pytestmark = pytest.mark.kafka



def context(repeat: timedelta = timedelta(hours=1)) -> EngineContext:
    """SEV1 without grouping delays, so updates and resolutions go out at once."""
    sev1 = SeverityPolicy(group_wait=timedelta(0), group_interval=timedelta(0),
                          repeat_interval=repeat)
    return EngineContext(policies=SeverityPolicies(SEV1=sev1), default_receivers=("pd",))


CONTEXT = context()


def firing(fp: str, name: str = "HighErrorRate", service: str = "checkout",
           **overrides: Any) -> AlertEvent:
    start = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    return AlertEvent(alert=Alert(
        source="alertmanager", fingerprint=fp, status=Status.FIRING, name=name,
        service=service, starts_at=start, received_at=start, severity=Severity.SEV1,
        receivers=("pd",), **overrides,
    ))


def resolved(event: AlertEvent) -> AlertEvent:
    a = event.alert
    end = a.starts_at + timedelta(minutes=1)
    return AlertEvent(alert=a.model_copy(update={"status": Status.RESOLVED, "ends_at": end}))


async def read_topic(cfg: KafkaBackendConfig, topic: str,
                     isolation_level: str = "read_committed") -> list[Any]:
    """Every record of `topic` up to its end at the time of the call."""
    consumer = AIOKafkaConsumer(**client_kwargs(cfg), isolation_level=isolation_level,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(cfg.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        async with asyncio.timeout(60):
            while any([await consumer.position(tp) < end[tp] for tp in tps]):
                for part in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(
                        r for r in part if r.offset < end[TopicPartition(r.topic, r.partition)])
        return records
    finally:
        await consumer.stop()


async def notifications(cfg: KafkaBackendConfig) -> list[Notification]:
    records = await read_topic(cfg, topic_names(cfg.topic_prefix).notifications)
    return [Notification.model_validate_json(r.value) for r in records]


async def eventually(check: Callable[[], Any], within: float = 60.0) -> None:
    """Poll an (async) condition until it holds; fails the test after a generous deadline."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.1)


class Replica:
    """One KafkaBackend with its own metrics registry, like one router process."""

    def __init__(self, cfg: KafkaBackendConfig, ctx: EngineContext = CONTEXT) -> None:
        self.registry = CollectorRegistry()
        self.backend = KafkaBackend(cfg, ctx, EngineMetrics(self.registry))

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def replicas(kafka_config: KafkaBackendConfig) -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for r in started:
        await r.backend.stop()


async def start(replicas: list[Replica], cfg: KafkaBackendConfig,
                ctx: EngineContext = CONTEXT) -> Replica:
    replica = Replica(cfg, ctx)
    await replica.backend.start()
    replicas.append(replica)
    return replica


async def stop(replicas: list[Replica], replica: Replica) -> None:
    replicas.remove(replica)
    await replica.backend.stop()


async def owned_by_all(replicas: list[Replica], partitions: int) -> bool:
    owned = sorted(p for r in replicas for p in r.backend.engine.owned)
    ready = [await r.backend.ready() for r in replicas]
    return owned == list(range(partitions)) and all(ready)


async def test_duplicates_through_two_replicas_notify_once(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    a = await start(replicas, kafka_config)
    b = await start(replicas, kafka_config)
    await eventually(lambda: owned_by_all(replicas, kafka_config.partitions))
    assert a.backend.engine.owned and b.backend.engine.owned

    event = firing("fp-1")
    for replica in (a, b, a):  # an Alertmanager HA pair, retries, two intake replicas
        await replica.backend.log.append([event])
    await a.backend.engine.drained()

    triggers = [n for n in await notifications(kafka_config)
                if n.kind is NotificationKind.TRIGGER]
    assert len(triggers) == 1
    assert triggers[0].group_key == "HighErrorRate|checkout"
    suppressed = "incident_router_engine_duplicates_suppressed_total"
    assert a.metric(suppressed) + b.metric(suppressed) == 2


async def test_state_is_restored_after_stopping_everything(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    first = await start(replicas, kafka_config)
    events = [firing(f"fp-{i}", name=f"Alert{i}") for i in range(5)]
    await first.backend.log.append(events)
    await first.backend.engine.drained()
    await stop(replicas, first)
    assert len(await notifications(kafka_config)) == 5

    again = await start(replicas, kafka_config)
    await again.backend.wait_ready()
    await again.backend.log.append(events)  # the same firings: already notified
    await again.backend.engine.drained()
    assert len(await notifications(kafka_config)) == 5
    assert again.metric("incident_router_engine_duplicates_suppressed_total") == 5

    await again.backend.log.append([resolved(events[0])])
    await again.backend.engine.drained()
    kinds = [n.kind for n in await notifications(kafka_config)]
    assert kinds.count(NotificationKind.TRIGGER) == 5
    assert kinds.count(NotificationKind.RESOLVE) == 1


async def test_an_aborted_transaction_leaves_nothing_and_the_decision_is_retried(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    replica = await start(replicas, kafka_config)
    await replica.backend.wait_ready()
    failures = []

    async def fail_once(tp: TopicPartition) -> None:
        if not failures:
            failures.append(tp)
            raise RuntimeError("injected failure before commit")

    replica.backend.engine.before_commit = fail_once
    event = firing("fp-abort")
    await replica.backend.log.append([event])
    await replica.backend.engine.drained()

    assert failures
    assert replica.metric("incident_router_engine_transaction_aborts_total") == 1
    topics = topic_names(kafka_config.topic_prefix)
    # The aborted attempt did write its records, but no read_committed reader sees them.
    uncommitted = await read_topic(kafka_config, topics.notifications, "read_uncommitted")
    assert len(uncommitted) == 2
    (trigger,) = await notifications(kafka_config)
    assert trigger.kind is NotificationKind.TRIGGER
    state = [r for r in await read_topic(kafka_config, topics.state)
             if r.key == b"HighErrorRate|checkout"]
    assert len(state) == 1
    assert replica.metric("incident_router_engine_events_total") == 1


async def test_not_ready_until_every_assigned_partition_is_restored(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    first = await start(replicas, kafka_config)
    await first.backend.log.append([firing(f"fp-{i}", name=f"A{i}") for i in range(20)])
    await first.backend.engine.drained()
    await stop(replicas, first)

    replica = Replica(kafka_config)
    assert not await replica.backend.ready()
    await replica.backend.start()
    replicas.append(replica)
    assert not await replica.backend.ready()  # has not joined the group yet
    await replica.backend.wait_ready()
    assert replica.metric("incident_router_engine_groups") == 20
    assert replica.metric("incident_router_engine_owned_partitions") == 3
    assert replica.metric("incident_router_engine_restore_duration_seconds") > 0


async def test_a_repeat_reminder_fires_when_its_timer_is_due(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    replica = await start(replicas, kafka_config, context(repeat=timedelta(seconds=1)))
    await replica.backend.log.append([firing("fp-t")])
    await replica.backend.engine.drained()

    async def repeated() -> bool:
        return any(n.kind is NotificationKind.REPEAT for n in await notifications(kafka_config))

    await eventually(repeated)


async def test_every_replica_lists_every_current_alert(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    a = await start(replicas, kafka_config)
    b = await start(replicas, kafka_config)
    await eventually(lambda: owned_by_all(replicas, kafka_config.partitions))
    events = [firing(f"fp-{i}", name=f"View{i}") for i in range(6)]
    await a.backend.log.append(events)
    await b.backend.log.append([resolved(events[0])])
    await a.backend.engine.drained()

    keys = sorted(e.alert.key for e in events)

    async def complete(r: Replica) -> bool:
        return sorted(x.key for x in await r.backend.current_alerts()) == keys

    for r in (a, b):
        await eventually(lambda r=r: complete(r))  # type: ignore[misc]
        firing_now = await r.backend.current_alerts(status="firing")
        assert sorted(x.key for x in firing_now) == keys[1:]
        assert len(await r.backend.current_alerts(limit=2)) == 2
        assert await r.backend.current_alerts(source="cloudwatch") == []


async def test_joins_the_group_without_waiting_for_the_restore(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    """aiokafka heartbeats only once the assignment callback returns: a restore inside it
    longer than the session timeout would get the member dropped from the group."""
    replica = Replica(kafka_config)
    runner = replica.backend.engine
    release = asyncio.Event()
    restore = runner._restore

    async def slow_restore(partitions: list[int]) -> Any:
        await release.wait()
        return await restore(partitions)

    runner._restore = slow_restore  # type: ignore[method-assign]
    await replica.backend.start()
    replicas.append(replica)
    await eventually(lambda: runner._joined, within=30)
    assert runner._assigned and not await replica.backend.ready()
    release.set()
    await replica.backend.wait_ready()
    assert runner.owned == list(range(kafka_config.partitions))
    await replica.backend.log.append([firing("fp-late")])
    await runner.drained()
    assert len(await notifications(kafka_config)) == 1


async def test_notifications_go_to_the_partition_of_their_group(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    replica = await start(replicas, kafka_config)
    await replica.backend.wait_ready()
    await replica.backend.log.append(
        [firing(f"fp-{i}", name=f"Part{i}") for i in range(12)])
    await replica.backend.engine.drained()
    topics = topic_names(kafka_config.topic_prefix)
    everything = list(range(kafka_config.partitions))
    partitioner = DefaultPartitioner()
    records = await read_topic(kafka_config, topics.notifications)
    assert len(records) == 12
    for r in records + await read_topic(kafka_config, topics.alerts_view):
        assert r.partition == partitioner(r.key, everything, everything)


def test_takes_bigger_batches_while_behind(kafka_config: KafkaBackendConfig) -> None:
    runner = KafkaEngineRunner(kafka_config, CONTEXT, EngineMetrics(CollectorRegistry()),
                               batch_size=100)
    behind = [0]
    runner.lag = lambda: behind[0]  # type: ignore[method-assign]
    for lag, expected in ((0, 100), (100, 100), (250, 250), (5_000, 1_000)):
        behind[0] = lag
        assert runner._max_records() == expected


async def test_the_next_offset_commits_with_the_state_and_a_restart_resumes_there(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    """The next offset to decide is in the changelog (POSITION_KEY), written in the same
    transaction as the state; a restart decides only what came after it."""
    first = await start(replicas, kafka_config)
    await first.backend.wait_ready()
    await first.backend.log.append([firing(f"fp-{i}", name=f"Pos{i}") for i in range(6)])
    await first.backend.engine.drained()
    await stop(replicas, first)

    topics = topic_names(kafka_config.topic_prefix)
    tps = [TopicPartition(topics.alerts, p) for p in range(kafka_config.partitions)]
    positions = {r.partition: int(r.value) for r in await read_topic(kafka_config, topics.state)
                 if r.key == POSITION_KEY.encode()}
    ends = {tp.partition: o for tp, o in (await end_offsets(kafka_config, tps)).items() if o}
    assert positions == ends
    again = await start(replicas, kafka_config)
    await again.backend.wait_ready()
    await again.backend.log.append([firing("fp-new", name="PosNew")])
    await again.backend.engine.drained()
    assert len(await notifications(kafka_config)) == 7
    assert again.metric("incident_router_engine_events_total") == 1


async def end_offsets(cfg: KafkaBackendConfig,
                      tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**client_kwargs(cfg), enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def test_a_partition_commits_while_another_partitions_transaction_is_open(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    """Partitions commit on their own: one whose transaction hangs holds back only itself."""
    # Nothing else ends the hang first: not the call timeout, not the watchdog.
    cfg = kafka_config.model_copy(update={"engine_call_timeout_seconds": 300.0,
                                          "engine_stall_seconds": 300.0})
    replica = await start(replicas, cfg)
    await replica.backend.wait_ready()
    held: list[TopicPartition] = []
    release = asyncio.Event()

    async def hold_the_first(tp: TopicPartition) -> None:
        if not held:
            held.append(tp)
        if tp == held[0]:
            await release.wait()

    replica.backend.engine.before_commit = hold_the_first
    first = firing("fp-first", name="First")
    await replica.backend.log.append([first])
    await eventually(lambda: held)
    events = [firing(f"fp-{i}", name=f"Other{i}") for i in range(12)]
    await replica.backend.log.append(events)
    everything = list(range(kafka_config.partitions))
    elsewhere = sum(1 for e in events if DefaultPartitioner()(
        event_key(e).encode(), everything, everything) != held[0].partition)
    assert elsewhere  # the twelve groups do not all hash to the held partition

    async def others_decided() -> bool:
        return len(await notifications(kafka_config)) >= elsewhere

    await eventually(others_decided)
    assert event_key(first) not in {n.group_key for n in await notifications(kafka_config)}
    release.set()
    await replica.backend.engine.drained()
    assert len(await notifications(kafka_config)) == 13


async def decided_once_on_a_clock(replicas: list[Replica], cfg: KafkaBackendConfig,
                                  event: AlertEvent) -> tuple[Replica, list[float]]:
    """A ready replica whose engine runs on a monotonic clock the test moves (`clock[0]`),
    with `event` decided."""
    replica = Replica(cfg)
    clock = [1000.0]
    replica.backend.engine.monotonic = lambda: clock[0]
    await replica.backend.start()
    replicas.append(replica)
    await replica.backend.wait_ready()
    await replica.backend.log.append([event])
    await replica.backend.engine.drained()
    assert replica.metric("incident_router_engine_events_total") == 1
    return replica, clock


async def test_the_batch_interval_holds_a_partitions_next_batch(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    """`engine_batch_interval_seconds`: records arriving within it of the partition's last
    batch wait for it to end (the runner's monotonic clock), then go in one batch."""
    cfg = kafka_config.model_copy(update={"engine_batch_interval_seconds": 1.0})
    replica, clock = await decided_once_on_a_clock(replicas, cfg, firing("fp-1"))
    engine = replica.backend.engine

    # The same group, so the same partition, still inside its interval: fetched, not decided.
    await replica.backend.log.append([firing("fp-2"), firing("fp-3")])
    await eventually(lambda: engine.lag() == 2)
    assert replica.metric("incident_router_engine_events_total") == 1
    clock[0] += 1.0
    await eventually(lambda: replica.metric("incident_router_engine_events_total") == 3)
    assert engine.lag() == 0


async def test_the_transaction_budget_is_shared_by_the_partitions(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    """`engine_transactions_per_second`: with the budget spent, records of two partitions
    wait (fetched, not decided); each new token (the runner's monotonic clock) starts one
    partition's batch, not both, and a partition's waiting records go in one batch."""
    cfg = kafka_config.model_copy(update={"engine_transactions_per_second": 1.0})
    # The first batch takes the budget's one token.
    replica, clock = await decided_once_on_a_clock(replicas, cfg, firing("fp-0"))
    engine = replica.backend.engine

    everything = list(range(cfg.partitions))

    def partition(name: str) -> int:
        key = event_key(firing("fp", name=name)).encode()
        return int(DefaultPartitioner()(key, everything, everything))

    first = partition("HighErrorRate")
    other = next(n for i in range(100) if partition(n := f"Other{i}") != first)
    await replica.backend.log.append([firing("fp-1"), firing("fp-2")])
    await replica.backend.log.append([firing("fp-3", name=other)])
    await eventually(lambda: engine.lag() == 3)
    assert replica.metric("incident_router_engine_events_total") == 1

    clock[0] += 1.0  # one token: the oldest waiting partition's two records, in one batch
    await eventually(lambda: replica.metric("incident_router_engine_events_total") == 3)
    assert engine.lag() == 1
    clock[0] += 1.0
    await eventually(lambda: replica.metric("incident_router_engine_events_total") == 4)
    assert engine.lag() == 0


async def test_the_engine_decides_what_its_own_intake_appended_without_decoding_it(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    """The events this process appended are taken from memory when decided (none is left
    held); one another process appended is decoded from its record. All three notify."""
    replica = await start(replicas, kafka_config)
    await replica.backend.wait_ready()
    await replica.backend.log.append([firing("fp-1", name="A"), firing("fp-2", name="B")])
    assert len(replica.backend.engine.fresh) == 2
    other = KafkaLog(kafka_config)
    await other.start()
    try:
        await other.append([firing("fp-3", name="C")])
    finally:
        await other.stop()
    await replica.backend.engine.drained()
    assert len(replica.backend.engine.fresh) == 0
    titles = sorted(n.alerts[0].name for n in await notifications(kafka_config))
    assert titles == ["A", "B", "C"]
