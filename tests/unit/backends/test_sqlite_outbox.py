"""What only the SQLite outbox has, beyond the contract every outbox keeps
(tests/contract/test_outbox.py): batch lookups of delivery records, the record and the
delivered mark in one write, and dead letters shared with another process (`dlq replay`)."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from router.delivery.records import MemoryDeliveryStore
from tests.contract.outboxes import MemoryStore, SqliteStore, note


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
        return
    sqlite = SqliteStore(tmp_path / "o.db")
    await sqlite.start()
    yield sqlite
    await sqlite.stop()


async def test_delivered_among_answers_for_a_batch(store: Any) -> None:
    await store.records.record("n1", "slack")
    await store.records.record("n2", "teams")
    keys = [("n1", "slack"), ("n1", "teams"), ("n2", "teams"), ("n3", "slack")]
    assert await store.records.delivered_among(keys) == {("n1", "slack"), ("n2", "teams")}
    assert await store.records.delivered_among([]) == set()


async def test_sqlite_records_and_marks_delivered_in_one_write(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "o.db")
    other = SqliteStore(tmp_path / "p.db")
    await s.start()
    await other.start()
    try:
        assert s.sqlite.records_into(s.sqlite_records)
        assert not s.sqlite.records_into(other.sqlite_records)
        assert not s.sqlite.records_into(MemoryDeliveryStore())
        await s.add(note(1), note(2))
        await s.sqlite.mark_delivered_recorded("n1", "n1", "slack")
        assert [i.id for i in await s.outbox.pending(10)] == ["n2"]
        assert await s.records.already_delivered("n1", "slack")
        assert not await s.records.already_delivered("n2", "slack")
    finally:
        await s.stop()
        await other.stop()


async def test_records_made_together_are_written_together_and_a_failed_write_tells_each(
    tmp_path: Path,
) -> None:
    s = SqliteStore(tmp_path / "o.db")
    await s.start()
    try:
        await s.add(*(note(i) for i in range(1, 8)))
        # Five deliveries recorded at once (one relaxed write), then one more (the next).
        await asyncio.gather(*(s.sqlite.mark_delivered_recorded(f"n{i}", f"n{i}", "slack")
                               for i in range(1, 6)))
        await s.sqlite.mark_delivered_recorded("n6", "n6", "slack")
        assert [i.id for i in await s.outbox.pending(10)] == ["n7"]
        keys = [(f"n{i}", "slack") for i in range(1, 8)]
        assert await s.records.delivered_among(keys) == set(keys[:6])

        await s.db.transaction(lambda c: c.execute("ALTER TABLE deliveries RENAME TO gone"))
        failed = await asyncio.gather(
            s.sqlite.mark_delivered_recorded("n7", "n7", "slack"),
            s.sqlite.mark_delivered_recorded("n7", "n7", "teams"), return_exceptions=True)
        assert all(isinstance(e, sqlite3.OperationalError) for e in failed)
        assert [i.id for i in await s.outbox.pending(10)] == ["n7"]  # nothing half-written
        await s.db.transaction(lambda c: c.execute("ALTER TABLE gone RENAME TO deliveries"))
        await s.sqlite.mark_delivered_recorded("n7", "n7", "slack")  # a fresh write
        assert await s.outbox.pending(10) == []
        assert await s.records.already_delivered("n7", "slack")
    finally:
        await s.stop()


async def test_a_failed_write_of_records_leaves_no_unretrieved_error_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """The callers get the error; the task that wrote for them must not also leave it for
    asyncio to log as "Task exception was never retrieved" (a line per failed write)."""
    s = SqliteStore(tmp_path / "o.db")
    await s.start()
    try:
        await s.add(note(1))
        await s.db.transaction(lambda c: c.execute("ALTER TABLE deliveries RENAME TO gone"))
        with pytest.raises(sqlite3.OperationalError):
            await s.sqlite.mark_delivered_recorded("n1", "n1", "slack")
        await asyncio.sleep(0)  # the writing task's done callbacks
        gc.collect()  # an unretrieved task error is logged when the task is freed
        assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    finally:
        await s.stop()


async def test_holds_sees_replays_by_another_process_and_new_dead_letters(
    tmp_path: Path,
) -> None:
    s = SqliteStore(tmp_path / "o.db")
    await s.start()
    try:
        await s.add(note(1), note(2, group="g2"))
        items = {i.id: i for i in await s.outbox.pending(10)}
        await s.outbox.dead_letter(items["n1"], "gone")
        assert await s.outbox.holds("slack", "g1")
        assert not await s.outbox.holds("slack", "g2")
        cli = SqliteStore(tmp_path / "o.db")  # `dlq replay` in another process
        await cli.start()
        assert await cli.outbox.holds("slack", "g1")  # it finds what is already in the table
        assert not await cli.outbox.holds("slack", "g2")
        assert await cli.outbox.replay(id="n1") == 1
        await cli.stop()
        assert not await s.outbox.holds("slack", "g1")
        await s.outbox.dead_letter(items["n2"], "gone")
        assert await s.outbox.holds("slack", "g2")
    finally:
        await s.stop()
