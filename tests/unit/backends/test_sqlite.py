"""The embedded database: group commit, durable and relaxed writes, inline reads, checkpoints."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from router.backends.embedded import sqlite as sqlite_module
from router.backends.embedded.sqlite import Database

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL);"


def insert(value: str | None) -> sqlite_module.Work:
    return lambda c: c.execute("INSERT INTO t (v) VALUES (?)", (value,))


async def values(db: Database) -> list[str]:
    return await db.read(lambda c: [r[0] for r in c.execute("SELECT v FROM t ORDER BY k")])


async def test_every_acknowledged_write_is_on_disk_for_a_new_process(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db", SCHEMA)
    await db.open()
    await asyncio.gather(*(db.write_batched(insert(f"d{i}")) for i in range(20)),
                         *(db.write_batched(insert(f"r{i}"), durable=False) for i in range(20)))
    await db.transaction(insert("txn"))
    assert len(await values(db)) == 41  # the inline reader sees the worker's commits
    await db.close()

    other = sqlite3.connect(tmp_path / "x.db")
    got = {r[0] for r in other.execute("SELECT v FROM t")}
    assert got == {f"d{i}" for i in range(20)} | {f"r{i}" for i in range(20)} | {"txn"}


@pytest.mark.parametrize("durable", [True, False])
async def test_a_failing_write_fails_its_whole_group_commit_and_nothing_of_it_lands(
        tmp_path: Path, durable: bool) -> None:
    db = Database(tmp_path / "x.db", SCHEMA)
    await db.open()
    try:
        results = await asyncio.gather(
            db.write_batched(insert("a"), durable=durable),
            db.write_batched(insert(None), durable=durable),  # NOT NULL violated
            return_exceptions=True)
        assert [type(r) for r in results] == [sqlite3.IntegrityError] * 2
        assert await values(db) == []
        await db.write_batched(insert("b"), durable=durable)  # the next batch is fine
        assert await values(db) == ["b"]
    finally:
        await db.close()


async def test_a_failing_transaction_rolls_back(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db", SCHEMA)
    await db.open()
    try:
        def work(c: sqlite3.Connection) -> None:
            insert("a")(c)
            raise RuntimeError("engine bug")

        with pytest.raises(RuntimeError):
            await db.transaction(work)
        assert await values(db) == []
    finally:
        await db.close()


async def test_inline_commits_are_checkpointed_on_the_worker_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY", 10)
    threads: list[str] = []
    checkpoint = Database._passive_checkpoint

    def spy(self: Database) -> None:
        threads.append(threading.current_thread().name)
        checkpoint(self)

    monkeypatch.setattr(Database, "_passive_checkpoint", spy)
    db = Database(tmp_path / "x.db", SCHEMA)
    await db.open()
    try:
        for i in range(25):
            await db.transaction(insert(f"v{i}"))
            if db._checkpoint is not None:  # let it finish: one still running is not restarted
                await db._checkpoint
        assert len(threads) == 2
        assert all(name.startswith("sqlite") for name in threads)
        assert len(await values(db)) == 25
    finally:
        await db.close()


def test_an_in_memory_database_is_refused() -> None:
    with pytest.raises(ValueError, match="database file"):
        Database(Path(":memory:"), SCHEMA)


# A deferred foreign key is checked at COMMIT: a real failure of the commit itself, after
# every statement of the batch succeeded (as a full disk or an I/O error would fail it).
FK_SCHEMA = """
PRAGMA foreign_keys=ON;
CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS child (
    id INTEGER PRIMARY KEY,
    parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
);
"""


def child(parent: int) -> sqlite_module.Work:
    return lambda c: c.execute("INSERT INTO child (parent) VALUES (?)", (parent,))


@pytest.mark.parametrize("durable", [True, False])
async def test_a_failing_commit_fails_every_waiter_of_its_group_and_the_next_one_commits(
        tmp_path: Path, durable: bool) -> None:
    """Before: the failed COMMIT left its transaction open, and every later write failed with
    "cannot start a transaction within a transaction" (intake answered 503 until a restart)."""
    db = Database(tmp_path / "x.db", FK_SCHEMA)
    await db.open()
    if not durable:  # the inline connection's own foreign_keys setting
        await db.read(lambda c: c.execute("PRAGMA foreign_keys=ON"))
    try:
        await db.write_batched(lambda c: c.execute("INSERT INTO parent (id) VALUES (1)"))
        results = await asyncio.gather(
            *(db.write_batched(child(1), durable=durable) for _ in range(5)),
            db.write_batched(child(2), durable=durable),  # no parent 2
            return_exceptions=True)
        assert [type(r) for r in results] == [sqlite3.IntegrityError] * 6
        assert await db.read(lambda c: c.execute("SELECT count(*) FROM child").fetchone()) \
            == (0,)
        await asyncio.gather(*(db.write_batched(child(1), durable=durable) for _ in range(3)))
        assert await db.read(lambda c: c.execute("SELECT count(*) FROM child").fetchone()) \
            == (3,)
    finally:
        await db.close()


async def test_each_durable_write_is_committed_when_its_waiter_resumes(tmp_path: Path) -> None:
    """Another connection (another process) sees every row as soon as write_batched returns:
    intake answers 2xx only after that."""
    db = Database(tmp_path / "x.db", SCHEMA)
    await db.open()
    other = sqlite3.connect(tmp_path / "x.db")
    try:
        async def write_and_look(value: str) -> bool:
            await db.write_batched(insert(value))
            return other.execute("SELECT 1 FROM t WHERE v = ?", (value,)).fetchone() is not None

        seen = await asyncio.gather(*(write_and_look(f"v{i}") for i in range(50)))
        assert seen == [True] * 50
    finally:
        other.close()
        await db.close()
