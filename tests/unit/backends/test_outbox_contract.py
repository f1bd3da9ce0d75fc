"""The outbox/dead-letter contract, run against the in-memory reference and SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from router.backends.embedded.outbox import (
    SCHEMA,
    SqliteDeliveryStore,
    SqliteOutbox,
    insert_notifications,
)
from router.backends.embedded.sqlite import Database
from router.delivery.outbox import MemoryOutbox
from router.delivery.records import MemoryDeliveryStore
from router.model import Notification, NotificationKind, Severity

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def note(i: int, receiver: str = "slack", group: str = "g1") -> Notification:
    return Notification(
        id=f"n{i}", receiver=receiver, kind=NotificationKind.TRIGGER, group_key=group,
        dedup_key=f"d-{group}", severity=Severity.SEV2, title=f"t{i}", created_at=T0,
    )


class SqliteFixture:
    def __init__(self, db: Database) -> None:
        self.outbox = SqliteOutbox(db)
        self.records = SqliteDeliveryStore(db)
        self._db = db

    async def add(self, *ns: Notification) -> None:
        await self._db.transaction(lambda c: insert_notifications(c, ns))


class MemoryFixture:
    def __init__(self) -> None:
        self.outbox = MemoryOutbox()
        self.records = MemoryDeliveryStore()

    async def add(self, *ns: Notification) -> None:
        for n in ns:
            self.outbox.add(n)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryFixture()
        return
    db = Database(tmp_path / "o.db", SCHEMA)
    await db.open()
    yield SqliteFixture(db)
    await db.close()


async def test_pending_in_order_and_delivered_items_leave(store: Any) -> None:
    await store.add(note(1), note(2), note(3))
    items = await store.outbox.pending(10)
    assert [i.id for i in items] == ["n1", "n2", "n3"]
    assert [i.id for i in await store.outbox.pending(10, after=items[0].seq)] == ["n2", "n3"]
    await store.outbox.mark_delivered(["n1", "n2"])
    assert [i.id for i in await store.outbox.pending(10)] == ["n3"]


async def test_dead_letter_and_replay_keep_lane_order(store: Any) -> None:
    await store.add(note(1), note(2), note(3, group="g2"))
    items = {i.id: i for i in await store.outbox.pending(10)}
    await store.outbox.dead_letter(items["n1"], "400 Bad Request")
    await store.outbox.dead_letter(items["n2"], "400 Bad Request")
    await store.outbox.dead_letter(items["n3"], "400 Bad Request")
    assert await store.outbox.pending(10) == []
    dead = await store.outbox.list()
    assert [d.id for d in dead] == ["n1", "n2", "n3"]
    assert dead[0].reason == "400 Bad Request"
    assert await store.outbox.holds("slack", "g1")
    # Replaying n1 brings back its whole lane (n1, n2), in order, and not g2's n3.
    assert await store.outbox.replay(id="n1") == 2
    assert [i.id for i in await store.outbox.pending(10)] == ["n1", "n2"]
    assert not await store.outbox.holds("slack", "g1")
    assert [d.id for d in await store.outbox.list()] == ["n3"]
    assert await store.outbox.replay(receiver="slack") == 1
    assert [i.id for i in await store.outbox.pending(10)] == ["n1", "n2", "n3"]
    assert await store.outbox.replay(id="missing") == 0


async def test_list_by_receiver(store: Any) -> None:
    await store.add(note(1, receiver="pd"), note(2, receiver="slack"))
    for item in await store.outbox.pending(10):
        await store.outbox.dead_letter(item, "gone")
    assert [d.id for d in await store.outbox.list(receiver="pd")] == ["n1"]


async def test_delivery_records_and_refs(store: Any) -> None:
    assert not await store.records.already_delivered("n1", "slack")
    await store.records.record("n1", "slack")
    assert await store.records.already_delivered("n1", "slack")
    assert not await store.records.already_delivered("n1", "teams")
    assert await store.records.get_ref("slack", "d1") is None
    await store.records.put_ref("slack", "d1", {"channel": "C1", "ts": "1.2"})
    assert await store.records.get_ref("slack", "d1") == {"channel": "C1", "ts": "1.2"}


async def test_delivered_among_answers_for_a_batch(store: Any) -> None:
    await store.records.record("n1", "slack")
    await store.records.record("n2", "teams")
    keys = [("n1", "slack"), ("n1", "teams"), ("n2", "teams"), ("n3", "slack")]
    assert await store.records.delivered_among(keys) == {("n1", "slack"), ("n2", "teams")}
    assert await store.records.delivered_among([]) == set()


async def test_sqlite_records_and_marks_delivered_in_one_write(tmp_path: Path) -> None:
    db = Database(tmp_path / "o.db", SCHEMA)
    other = Database(tmp_path / "p.db", SCHEMA)
    await db.open()
    await other.open()
    try:
        s = SqliteFixture(db)
        assert s.outbox.records_into(s.records)
        assert not s.outbox.records_into(SqliteDeliveryStore(other))
        assert not s.outbox.records_into(MemoryDeliveryStore())
        await s.add(note(1), note(2))
        await s.outbox.mark_delivered_recorded("n1", "n1", "slack")
        assert [i.id for i in await s.outbox.pending(10)] == ["n2"]
        assert await s.records.already_delivered("n1", "slack")
        assert not await s.records.already_delivered("n2", "slack")
    finally:
        await db.close()
        await other.close()


async def test_holds_sees_replays_by_another_process_and_new_dead_letters(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "o.db", SCHEMA)
    await db.open()
    try:
        s = SqliteFixture(db)
        await s.add(note(1), note(2, group="g2"))
        items = {i.id: i for i in await s.outbox.pending(10)}
        await s.outbox.dead_letter(items["n1"], "gone")
        assert await s.outbox.holds("slack", "g1")
        assert not await s.outbox.holds("slack", "g2")
        other = Database(tmp_path / "o.db", SCHEMA)  # `dlq replay` in another process
        await other.open()
        cli = SqliteOutbox(other)
        assert await cli.holds("slack", "g1")  # it finds what is already in the table
        assert not await cli.holds("slack", "g2")
        assert await cli.replay(id="n1") == 1
        await other.close()
        assert not await s.outbox.holds("slack", "g1")
        await s.outbox.dead_letter(items["n2"], "gone")
        assert await s.outbox.holds("slack", "g2")
    finally:
        await db.close()
