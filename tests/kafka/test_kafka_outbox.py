"""What only a shared, partitioned outbox has, beyond the contract every outbox keeps
(tests/contract/test_outbox.py): records and dead letters every replica reads, another
replica's replay, a rebalance that loses nothing, and the backlog the intake gate watches."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from router.backends.kafka.topics import ensure_topics
from router.config import KafkaBackendConfig
from tests.contract.outboxes import KafkaStore, note, pending_ids
from tests.kafka.test_kafka_engine import eventually

pytestmark = pytest.mark.kafka


@pytest.fixture
async def stores(kafka_config: KafkaBackendConfig) -> AsyncIterator[list[KafkaStore]]:
    await ensure_topics(kafka_config)
    started: list[KafkaStore] = []
    yield started
    for s in started:
        await s.stop()


async def new_store(stores: list[KafkaStore], cfg: KafkaBackendConfig) -> KafkaStore:
    store = KafkaStore(cfg)
    await store.start()
    stores.append(store)
    return store


async def test_delivery_records_and_refs_are_read_by_another_replica(
    kafka_config: KafkaBackendConfig, stores: list[KafkaStore]
) -> None:
    store = await new_store(stores, kafka_config)
    await store.records.record("n1", "slack")
    await store.records.put_ref("slack", "d1", {"channel": "C1", "ts": "1.2"})
    # Another replica (or this one after a restart) reads them from the topic.
    other = await new_store(stores, kafka_config)
    assert await other.records.already_delivered("n1", "slack")
    assert await other.records.get_ref("slack", "d1") == {"channel": "C1", "ts": "1.2"}

async def test_dead_letters_and_replays_are_seen_by_every_replica(
    kafka_config: KafkaBackendConfig, stores: list[KafkaStore]
) -> None:
    a = await new_store(stores, kafka_config)
    await a.add(note(1))
    await pending_ids(a, 1)
    (item,) = await a.outbox.pending(10)
    await a.outbox.dead_letter(item, "410 Gone")

    b = await new_store(stores, kafka_config)
    assert [d.id for d in await b.outbox.list()] == ["n1"]
    assert await b.outbox.holds("slack", "g1")
    assert await a.outbox.replay(id="n1") == 1
    # b's view may lag, but holds() catches up before it would park an item behind a ghost.
    assert not await b.outbox.holds("slack", "g1")


async def test_a_rebalance_loses_no_item(
    kafka_config: KafkaBackendConfig, stores: list[KafkaStore]
) -> None:
    a = await new_store(stores, kafka_config)
    b = await new_store(stores, kafka_config)
    await eventually(lambda: a.kafka.joined and b.kafka.joined)
    sent = {f"n{i}" for i in range(30)}
    await a.add(*(note(i, group=f"g{i}") for i in range(30)))
    delivered: set[str] = set()
    taken_by_b: set[str] = set()

    async def everything_taken() -> bool:
        items = await a.outbox.pending(100)
        await a.outbox.mark_delivered([i.id for i in items])
        delivered.update(i.id for i in items)
        taken_by_b.update(i.id for i in await b.outbox.pending(100))
        return delivered | taken_by_b >= sent

    await eventually(everything_taken)
    # b stops with its items handed out but never delivered (a crash in the middle of a send).
    stores.remove(b)
    await b.stop()

    async def everything_delivered() -> bool:
        items = await a.outbox.pending(100)
        await a.outbox.mark_delivered([i.id for i in items])
        delivered.update(i.id for i in items)
        return delivered >= sent

    await eventually(everything_delivered)
    assert taken_by_b  # b did own some partitions


async def test_backlog_counts_items_read_and_not_done_and_done_items_report_progress(
    kafka_config: KafkaBackendConfig, stores: list[KafkaStore]
) -> None:
    store = await new_store(stores, kafka_config)
    done: list[int] = []
    store.kafka.on_done = lambda: done.append(store.kafka.backlog)
    assert store.kafka.backlog == 0
    await store.add(note(1), note(2), note(3))
    await pending_ids(store, 3)
    assert store.kafka.backlog == 3
    await store.outbox.mark_delivered(["n1", "n2"])
    assert store.kafka.backlog == 1
    assert done == [2, 1]
