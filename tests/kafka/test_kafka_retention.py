"""Kafka retention on the real broker, on an injected clock: an incident resolved longer ago than
`closed_incidents_max_age` is tombstoned in the incidents view and leaves every replica's
memory and a restarted replica's restore; open and recently resolved ones stay. Delivery
records and refs past their age leave memory (the broker deletes them by `retention.ms`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from router.backends.kafka.backend import KafkaBackend
from router.backends.kafka.topics import topic_names
from router.config import KafkaBackendConfig
from router.metrics import EngineMetrics
from tests.kafka.test_kafka_engine import eventually, read_topic
from tests.support.clock import Clock
from tests.unit.engine.test_incidents import CTX, command

pytestmark = pytest.mark.kafka

DAY = 24 * 60  # minutes


@pytest.fixture
def cfg(kafka_config: KafkaBackendConfig) -> KafkaBackendConfig:
    """The ages the tests step the clock past; passes run only when a test asks for one."""
    return kafka_config.model_copy(update={
        "closed_incidents_max_age": timedelta(days=30),
        "delivery_records_max_age": timedelta(days=7), "prune_interval": timedelta(days=1)})


@pytest.fixture
async def started() -> AsyncIterator[list[KafkaBackend]]:
    backends: list[KafkaBackend] = []
    yield backends
    for b in backends:
        await b.stop()


async def start(started: list[KafkaBackend], cfg: KafkaBackendConfig,
                clock: Clock) -> KafkaBackend:
    backend = KafkaBackend(cfg, CTX, EngineMetrics(CollectorRegistry()), clock=clock)
    started.append(backend)
    await backend.start()
    await backend.wait_ready()
    return backend


async def groups(backend: KafkaBackend) -> set[str]:
    return {i.group_key for i in await backend.incidents()}


async def test_resolved_incidents_are_tombstoned_after_the_age_and_open_ones_stay(
        cfg: KafkaBackendConfig, started: list[KafkaBackend]) -> None:
    clock = Clock()
    a = await start(started, cfg, clock)
    other = await start(started, cfg, clock)  # a replica that only tails the view
    names = ("closed", "open", "closed-late")
    await a.log.append([command("declare", 0, group_key=f"manual:{n}", title=n,
                                severity="SEV3") for n in names])
    await a.engine.drained()
    ids = {i.group_key: i.id for i in await a.incidents()}
    await a.log.append([
        command("resolve", DAY, ids["manual:closed"], group_key="manual:closed"),
        command("resolve", 10 * DAY, ids["manual:closed-late"], group_key="manual:closed-late"),
    ])
    await a.engine.drained()
    clock.set(32 * DAY)  # 31 days after the first resolve, 22 after the second

    async def reminded() -> bool:
        # The engine's last word on a resolved incident: the post-mortem reminder (48 h).
        done = [i for i in await a.incidents() if i.status.value == "resolved"
                and any(e.kind == "postmortem" for e in i.timeline)]
        return len(done) == 2

    await eventually(reminded)

    assert (await a.retention.prune())["incidents"] == 1

    everything = {"manual:open", "manual:closed-late"}
    assert await groups(a) == everything
    assert await a.incident(ids["manual:closed"]) is None

    async def forgotten() -> bool:
        return await groups(other) == everything

    await eventually(forgotten)
    # The topic holds a tombstone for it (compaction drops both), so a restore skips it.
    view = await read_topic(cfg, topic_names(cfg.topic_prefix).incidents_view)
    last = {r.key.decode(): r.value for r in view}
    assert last[ids["manual:closed"]] is None
    restarted = await start(started, cfg, clock)
    assert await groups(restarted) == everything
    # A second pass has nothing left to do, until the later one is past the age too.
    assert (await a.retention.prune())["incidents"] == 0
    clock.set(365 * DAY)
    assert (await a.retention.prune())["incidents"] == 1
    assert await groups(a) == {"manual:open"}


async def test_delivery_records_and_refs_past_their_age_leave_memory(
        cfg: KafkaBackendConfig, started: list[KafkaBackend]) -> None:
    clock = Clock()
    b = await start(started, cfg, clock)
    await b.records.record("n1", "slack")  # written now, by the wall clock (Kafka's too)
    await b.records.put_ref("slack", "slack-thread:d1", {"channel": "C1", "ts": "1.2"})
    clock.now = datetime.now(UTC) + timedelta(days=6)

    assert (await b.retention.prune())["delivery_records"] == 0
    assert await b.records.already_delivered("n1", "slack")
    clock.now = datetime.now(UTC) + timedelta(days=8)
    assert (await b.retention.prune())["delivery_records"] == 2
    assert not await b.records.already_delivered("n1", "slack")
    assert await b.records.get_ref("slack", "slack-thread:d1") is None
