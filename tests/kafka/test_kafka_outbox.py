"""The outbox/dead-letter/delivery-record contract (tests/unit/backends/test_outbox_contract.py)
against Kafka, plus what only a shared, partitioned outbox has: offsets that survive a restart,
another replica's replay, and a rebalance that loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from router.backends.kafka.backend import client_kwargs, ensure_topics, topic_names
from router.backends.kafka.outbox import KafkaDeliveryStore, KafkaOutbox, decode_dead_letter
from router.backends.kafka.table import CompactedTable, KafkaWriter
from router.config import KafkaBackendConfig
from router.delivery.outbox import DeadLetter, OutboxItem
from router.model import Notification, NotificationKind, Severity

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def note(i: int, receiver: str = "slack", group: str = "g1") -> Notification:
    return Notification(
        id=f"n{i}", receiver=receiver, kind=NotificationKind.TRIGGER, group_key=group,
        dedup_key=f"d-{group}", severity=Severity.SEV2, title=f"t{i}", created_at=T0,
    )


async def eventually(check: Callable[[], Any], within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.1)


class Store:
    """One replica's delivery side: outbox, dead letters, delivery records."""

    def __init__(self, cfg: KafkaBackendConfig) -> None:
        topics = topic_names(cfg.topic_prefix)
        self.cfg = cfg
        self.writer = KafkaWriter(cfg, client_id="test-writer")
        self.dead: CompactedTable[DeadLetter] = CompactedTable(
            cfg, topics.notifications_dlq, decode_dead_letter, self.writer)
        self.table: CompactedTable[bytes] = CompactedTable(
            cfg, topics.delivery_records, bytes, self.writer)
        self.outbox = KafkaOutbox(cfg, self.dead, self.table, commit_interval=0.1)
        self.records = KafkaDeliveryStore(self.table)

    async def start(self) -> None:
        await self.writer.start()
        await self.dead.start(self.cfg.partitions)
        await self.table.start(self.cfg.partitions)
        await self.outbox.start()

    async def stop(self) -> None:
        await self.outbox.stop()
        await self.table.stop()
        await self.dead.stop()
        await self.writer.stop()

    async def add(self, *ns: Notification) -> None:
        """What an engine commit does: the notifications land on the outbox topic."""
        producer = AIOKafkaProducer(**client_kwargs(self.cfg), enable_idempotence=True)
        await producer.start()
        try:
            for n in ns:
                await producer.send_and_wait(
                    topic_names(self.cfg.topic_prefix).notifications,
                    key=n.group_key.encode(), value=n.model_dump_json().encode())
        finally:
            await producer.stop()

    async def pending_ids(self, count: int) -> list[str]:
        """Ids of `count` pending items, once that many arrived (oldest first)."""
        items: list[OutboxItem] = []

        async def arrived() -> bool:
            items[:] = await self.outbox.pending(100)
            return len(items) >= count

        await eventually(arrived)
        return [i.id for i in items]


@pytest.fixture
async def stores(kafka_config: KafkaBackendConfig) -> AsyncIterator[list[Store]]:
    await ensure_topics(kafka_config)
    started: list[Store] = []
    yield started
    for s in started:
        await s.stop()


async def new_store(stores: list[Store], cfg: KafkaBackendConfig) -> Store:
    store = Store(cfg)
    await store.start()
    stores.append(store)
    return store


async def test_pending_in_order_and_delivered_items_leave(
    kafka_config: KafkaBackendConfig, stores: list[Store]
) -> None:
    store = await new_store(stores, kafka_config)
    await store.add(note(1), note(2), note(3))
    assert await store.pending_ids(3) == ["n1", "n2", "n3"]
    items = await store.outbox.pending(10)
    assert [i.id for i in await store.outbox.pending(10, after=items[0].seq)] == ["n2", "n3"]
    await store.outbox.mark_delivered(["n1", "n2"])
    assert [i.id for i in await store.outbox.pending(10)] == ["n3"]


async def test_delivered_offsets_survive_a_restart_and_undone_items_come_back(
    kafka_config: KafkaBackendConfig, stores: list[Store]
) -> None:
    store = await new_store(stores, kafka_config)
    await store.add(note(1), note(2), note(3))
    await store.pending_ids(3)
    await store.outbox.mark_delivered(["n1", "n3"])  # n2 is still in flight at the "crash"
    stores.remove(store)
    await store.stop()

    again = await new_store(stores, kafka_config)
    # n3 comes back too: the group's offset stops before the first undone record (n2).
    assert await again.pending_ids(2) == ["n2", "n3"]


async def test_dead_letter_and_replay_keep_lane_order(
    kafka_config: KafkaBackendConfig, stores: list[Store]
) -> None:
    store = await new_store(stores, kafka_config)
    await store.add(note(1), note(2), note(3, group="g2"))
    await store.pending_ids(3)
    items = {i.id: i for i in await store.outbox.pending(10)}
    for i in ("n1", "n2", "n3"):
        await store.outbox.dead_letter(items[i], "400 Bad Request")
    assert await store.outbox.pending(10) == []
    dead = await store.outbox.list()
    assert [d.id for d in dead] == ["n1", "n2", "n3"]
    assert dead[0].reason == "400 Bad Request"
    assert await store.outbox.holds("slack", "g1")
    # Replaying n1 brings back its whole lane (n1, n2), in order, and not g2's n3.
    assert await store.outbox.replay(id="n1") == 2
    assert not await store.outbox.holds("slack", "g1")
    assert [d.id for d in await store.outbox.list()] == ["n3"]
    assert await store.pending_ids(2) == ["n1", "n2"]
    assert await store.outbox.replay(receiver="slack") == 1
    assert await store.pending_ids(3) == ["n1", "n2", "n3"]
    assert await store.outbox.replay(id="missing") == 0


async def test_list_by_receiver(kafka_config: KafkaBackendConfig, stores: list[Store]) -> None:
    store = await new_store(stores, kafka_config)
    await store.add(note(1, receiver="pd"), note(2, receiver="slack"))
    await store.pending_ids(2)
    for item in await store.outbox.pending(10):
        await store.outbox.dead_letter(item, "gone")
    assert [d.id for d in await store.outbox.list(receiver="pd")] == ["n1"]


async def test_delivery_records_and_refs(
    kafka_config: KafkaBackendConfig, stores: list[Store]
) -> None:
    store = await new_store(stores, kafka_config)
    records = store.records
    assert not await records.already_delivered("n1", "slack")
    await records.record("n1", "slack")
    assert await records.already_delivered("n1", "slack")
    assert not await records.already_delivered("n1", "teams")
    assert await records.get_ref("slack", "d1") is None
    await records.put_ref("slack", "d1", {"channel": "C1", "ts": "1.2"})
    assert await records.get_ref("slack", "d1") == {"channel": "C1", "ts": "1.2"}

    # Another replica (or this one after a restart) reads them from the topic.
    other = await new_store(stores, kafka_config)
    assert await other.records.already_delivered("n1", "slack")
    assert await other.records.get_ref("slack", "d1") == {"channel": "C1", "ts": "1.2"}


async def test_dead_letters_and_replays_are_seen_by_every_replica(
    kafka_config: KafkaBackendConfig, stores: list[Store]
) -> None:
    a = await new_store(stores, kafka_config)
    await a.add(note(1))
    await a.pending_ids(1)
    (item,) = await a.outbox.pending(10)
    await a.outbox.dead_letter(item, "410 Gone")

    b = await new_store(stores, kafka_config)
    assert [d.id for d in await b.outbox.list()] == ["n1"]
    assert await b.outbox.holds("slack", "g1")
    assert await a.outbox.replay(id="n1") == 1
    # b's view may lag, but holds() catches up before it would park an item behind a ghost.
    assert not await b.outbox.holds("slack", "g1")


async def test_a_rebalance_loses_no_item(
    kafka_config: KafkaBackendConfig, stores: list[Store]
) -> None:
    a = await new_store(stores, kafka_config)
    b = await new_store(stores, kafka_config)
    await eventually(lambda: a.outbox.joined and b.outbox.joined)
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
    kafka_config: KafkaBackendConfig, stores: list[Store]
) -> None:
    store = await new_store(stores, kafka_config)
    done: list[int] = []
    store.outbox.on_done = lambda: done.append(store.outbox.backlog)
    assert store.outbox.backlog == 0
    await store.add(note(1), note(2), note(3))
    await store.pending_ids(3)
    assert store.outbox.backlog == 3
    await store.outbox.mark_delivered(["n1", "n2"])
    assert store.outbox.backlog == 1
    assert done == [2, 1]
