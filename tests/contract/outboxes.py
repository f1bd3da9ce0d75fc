"""The outboxes of the outbox contract suite (tests/contract/test_outbox.py), one per backend,
behind the same small interface: the in-memory reference, SQLite, and Kafka on the real broker.

Each plays one router process's delivery side: `outbox` (Outbox and DeadLetters), `records`
(DeliveryStore), `add` (what an engine commit puts into the outbox), `restart` (the process
dies and another one opens the same storage), and `config_file` (a router.yaml naming that
storage, for the `incident-router dlq` commands).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import yaml
from aiokafka import AIOKafkaProducer

from router.backends.base import OutboxStore
from router.backends.embedded.outbox import (
    SCHEMA,
    SqliteDeliveryStore,
    SqliteOutbox,
    insert_notifications,
)
from router.backends.embedded.sqlite import Database
from router.backends.kafka.outbox import KafkaDeliveryStore, KafkaOutbox, decode_dead_letter
from router.backends.kafka.table import CompactedTable, KafkaWriter
from router.backends.kafka.topics import client_kwargs, topic_names
from router.config import KafkaBackendConfig
from router.delivery.outbox import DeadLetter, MemoryOutbox, OutboxItem
from router.delivery.records import DeliveryStore, MemoryDeliveryStore
from router.model import Notification, NotificationKind, Severity
from tests.kafka.test_kafka_engine import eventually

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def note(i: int, receiver: str = "slack", group: str = "g1") -> Notification:
    return Notification(
        id=f"n{i}", receiver=receiver, kind=NotificationKind.TRIGGER, group_key=group,
        dedup_key=f"d-{group}", severity=Severity.SEV2, title=f"t{i}", created_at=T0,
    )


class OutboxUnderTest(Protocol):
    outbox: OutboxStore
    records: DeliveryStore

    async def add(self, *ns: Notification) -> None: ...

    async def stop(self) -> None: ...


async def pending(store: OutboxUnderTest, count: int) -> list[OutboxItem]:
    """The pending items once at least `count` arrived (a Kafka outbox reads them from its
    topic in the background), oldest first."""
    items: list[OutboxItem] = []

    async def arrived() -> bool:
        items[:] = await store.outbox.pending(100)
        return len(items) >= count

    await eventually(arrived)
    return items


async def pending_ids(store: OutboxUnderTest, count: int) -> list[str]:
    return [i.id for i in await pending(store, count)]


# --- the reference --------------------------------------------------------------------------


class MemoryStore:
    def __init__(self) -> None:
        self.memory = MemoryOutbox()
        self.outbox: OutboxStore = self.memory
        self.records: DeliveryStore = MemoryDeliveryStore()

    async def add(self, *ns: Notification) -> None:
        for n in ns:
            self.memory.add(n)

    async def stop(self) -> None:
        pass


# --- embedded ---------------------------------------------------------------------------------


class SqliteStore:
    """The outbox tables of the embedded database (`path`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = Database(path, SCHEMA)
        self.sqlite = SqliteOutbox(self.db)
        self.outbox: OutboxStore = self.sqlite
        self.sqlite_records = SqliteDeliveryStore(self.db)
        self.records: DeliveryStore = self.sqlite_records

    async def start(self) -> None:
        await self.db.open()

    async def stop(self) -> None:
        await self.db.close()

    async def add(self, *ns: Notification) -> None:
        await self.db.transaction(lambda c: insert_notifications(c, ns))

    async def restart(self) -> SqliteStore:
        await self.stop()
        again = SqliteStore(self.path)
        await again.start()
        return again

    def config_file(self, directory: Path) -> Path:
        return _config_file(directory, {"type": "embedded", "path": str(self.path)})


# --- Kafka ------------------------------------------------------------------------------------


class KafkaStore:
    """One replica's delivery side on Kafka: outbox, dead letters, delivery records."""

    def __init__(self, cfg: KafkaBackendConfig) -> None:
        topics = topic_names(cfg.topic_prefix)
        self.cfg = cfg
        self.writer = KafkaWriter(cfg, client_id="test-writer")
        self.dead: CompactedTable[DeadLetter] = CompactedTable(
            cfg, topics.notifications_dlq, decode_dead_letter, self.writer)
        self.table: CompactedTable[bytes] = CompactedTable(
            cfg, topics.delivery_records, bytes, self.writer)
        self.kafka = KafkaOutbox(cfg, self.dead, self.table, commit_interval=0.1)
        self.outbox: OutboxStore = self.kafka
        self.records: DeliveryStore = KafkaDeliveryStore(self.table)

    async def start(self) -> None:
        await self.writer.start()
        await self.dead.start(self.cfg.partitions)
        await self.table.start(self.cfg.partitions)
        await self.kafka.start()

    async def stop(self) -> None:
        await self.kafka.stop()
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

    async def restart(self) -> KafkaStore:
        await self.stop()
        again = KafkaStore(self.cfg)
        await again.start()
        return again

    def config_file(self, directory: Path) -> Path:
        return _config_file(directory, {
            "type": "kafka", "bootstrap_servers": self.cfg.bootstrap_servers,
            "topic_prefix": self.cfg.topic_prefix, "group_id": self.cfg.group_id,
            "partitions": self.cfg.partitions, "replication_factor": 1,
        })


def _config_file(directory: Path, backend: dict[str, object]) -> Path:
    path = directory / "router.yaml"
    path.write_text(yaml.safe_dump({"backend": backend}))
    return path
