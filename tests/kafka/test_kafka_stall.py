"""No stall without an alarm (issue 13): a hung broker call is bounded, a member that stops
deciding while records wait is restarted by the watchdog and reports not ready meanwhile, and
after a broker kill -9 and restart every accepted alert is decided exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import TopicPartition

from router.backends.base import LogEvent, LogUnavailable
from router.config import KafkaBackendConfig
from router.model import NotificationKind
from tests.kafka.test_kafka_engine import Replica, eventually, firing, notifications, start

pytestmark = pytest.mark.kafka

FAST = {"engine_stall_seconds": 3.0, "engine_call_timeout_seconds": 2.0}


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for r in started:
        await r.backend.stop()


def alerts(prefix: str, n: int) -> list[LogEvent]:
    """`n` alerts in `n` groups: each is one trigger when decided."""
    return [firing(f"{prefix}-{i}", name=f"{prefix}{i}") for i in range(n)]


async def triggers(cfg: KafkaBackendConfig) -> Counter[str]:
    """Trigger notifications per group key (a decision made twice would count 2)."""
    return Counter(n.group_key for n in await notifications(cfg)
                   if n.kind is NotificationKind.TRIGGER)


async def append_until_accepted(replica: Replica, events: list[LogEvent]) -> None:
    """Append as a source does: retried while the log answers 'unavailable' (a 503)."""
    async with asyncio.timeout(120):
        while True:
            try:
                await replica.backend.log.append(events)
                return
            except LogUnavailable:
                await asyncio.sleep(0.5)


async def test_a_hung_transaction_is_bounded_and_its_decision_retried_once(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    cfg = kafka_config.model_copy(update=FAST)
    replica = await start(replicas, cfg)
    await replica.backend.wait_ready()
    hung: list[TopicPartition] = []

    async def hang_once(tp: TopicPartition) -> None:
        if not hung:
            hung.append(tp)
            await asyncio.Event().wait()  # a commit that never returns

    replica.backend.engine.before_commit = hang_once
    await replica.backend.log.append(alerts("hung", 1))
    await eventually(lambda: replica.metric("incident_router_engine_transaction_aborts_total"))
    await replica.backend.engine.drained()

    assert hung
    assert await triggers(cfg) == Counter({"hung0|checkout": 1})
    # The call timeout recovered it; the watchdog had nothing to do.
    assert replica.metric("incident_router_engine_restarts_total") == 0


async def test_a_member_that_stops_fetching_is_not_ready_and_restarted_by_the_watchdog(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    cfg = kafka_config.model_copy(update=FAST)
    replica = await start(replicas, cfg)
    await replica.backend.wait_ready()
    await replica.backend.log.append(alerts("before", 3))
    await eventually(lambda: replica.metric("incident_router_engine_events_total") == 3)

    # Wedge it as the reported replica was: owner of its partitions, fetching nothing.
    consumer = replica.backend.engine.consumer
    assert consumer is not None
    consumer.pause(*consumer.assignment())
    await replica.backend.log.append(alerts("during", 5))

    async def not_ready() -> bool:
        return not await replica.backend.ready()

    await eventually(not_ready)  # the watchdog saw the stall: out of the Service
    await eventually(lambda: replica.backend.ready())  # restarted and restored
    await eventually(lambda: _total(cfg, 8))

    assert await triggers(cfg) == Counter({f"{p}{i}|checkout": 1 for p, n in
                                           (("before", 3), ("during", 5)) for i in range(n)})
    assert replica.metric("incident_router_engine_restarts_total") >= 1
    assert replica.metric("incident_router_engine_stalled") == 0
    assert replica.metric("incident_router_engine_consumer_lag") == 0


async def _total(cfg: KafkaBackendConfig, n: int) -> bool:
    return sum((await triggers(cfg)).values()) >= n


async def test_after_a_broker_kill_mid_stream_every_accepted_alert_is_decided_once(
    kafka_broker: Any, kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    cfg = kafka_config.model_copy(update={**FAST, "bootstrap_servers": [kafka_broker.bootstrap]})
    a = await start(replicas, cfg)
    b = await start(replicas, cfg)
    await eventually(lambda: all([a.backend.engine.owned, b.backend.engine.owned]))
    accepted: list[str] = []  # group keys whose append was acknowledged
    sent: list[str] = []  # every group key offered (a 503 may still have been stored)

    async def stream() -> None:
        for i in range(100_000):
            event = firing(f"s-{i}", name=f"s{i}")
            sent.append(f"s{i}|checkout")
            try:
                await (a, b)[i % 2].backend.log.append([event])
            except LogUnavailable:
                continue  # the source would retry; not counted as accepted
            accepted.append(sent[-1])
            await asyncio.sleep(0.01)

    streaming = asyncio.create_task(stream())
    try:
        await eventually(lambda: len(accepted) >= 40)
        await asyncio.to_thread(kafka_broker.kill)  # transactions and fetches in flight
        await asyncio.to_thread(kafka_broker.start)  # same port, same data directory
        after = len(accepted)
        await eventually(lambda: len(accepted) >= after + 40, within=120)
    finally:
        streaming.cancel()

    async def all_decided() -> bool:
        return set(accepted) <= set(await triggers(cfg))

    await eventually(all_decided, within=180)
    for r in (a, b):
        await eventually(lambda r=r: r.backend.ready())
    decided = await triggers(cfg)
    assert set(accepted) <= set(decided) <= set(sent)
    assert [key for key, n in decided.items() if n > 1] == []  # none decided twice


async def test_stopping_a_replica_whose_commit_hangs_ends_and_decides_nothing(
    kafka_config: KafkaBackendConfig, replicas: list[Replica]
) -> None:
    cfg = kafka_config.model_copy(update={**FAST, "engine_call_timeout_seconds": 30.0})
    replica = await start(replicas, cfg)
    await replica.backend.wait_ready()
    entered = asyncio.Event()

    async def hang(tp: TopicPartition) -> None:
        entered.set()
        await asyncio.Event().wait()

    replica.backend.engine.before_commit = hang
    await replica.backend.log.append(alerts("stuck", 1))
    await asyncio.wait_for(entered.wait(), 60)

    replicas.remove(replica)
    await asyncio.wait_for(replica.backend.stop(), 120)  # not forever

    assert await triggers(cfg) == Counter()  # the open transaction never committed
