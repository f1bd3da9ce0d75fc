"""One SQLite database on one worker thread, with group commit.

Every statement runs on a single dedicated thread (sqlite3 connections are not shareable across
threads, and one writer is what SQLite wants anyway). Concurrent `append`s that arrive while a
commit is in flight are batched into the next transaction, so N concurrent requests cost one
fsync, not N. Nothing is acknowledged before its transaction commits.

Durability is chosen per write: what intake acknowledges to a source (`durable=True`) commits
with `synchronous=FULL` (the WAL is fsynced); bookkeeping that can be redone after a power loss
(engine state and outbox, recomputed deterministically from the log; delivery records, whose
loss means at worst a resend with the same vendor dedup key) commits with `NORMAL`, which
survives a process crash. A FULL commit makes everything before it durable too.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

Work = Callable[[sqlite3.Connection], object]


class Database:
    def __init__(self, path: Path, schema: str, synchronous: str = "FULL") -> None:
        self._path = path
        self._schema = schema
        # The level for durable writes (FULL); tests and benchmarks may relax it.
        self._synchronous = synchronous
        self._level: str | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Work, bool, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        if str(self._path) != ":memory:":
            self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(self._schema)
        self._conn = conn
        self._level = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- running work ----------------------------------------------------------------------

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._closed and self._conn is None:
            raise sqlite3.ProgrammingError("database is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read (or a self-contained write) on the database thread."""
        return await self._run(lambda: fn(self._require()))

    async def transaction(self, fn: Callable[[sqlite3.Connection], T],
                          durable: bool = False) -> T:
        """Run `fn` in its own transaction (used by the engine for its atomic commits)."""

        def run() -> T:
            conn = self._require()
            self._set_level(conn, durable)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._run(run)

    async def write_batched(self, work: Work, durable: bool = True) -> None:
        """Queue `work` for the next group commit and wait until it is committed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((work, durable, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        while self._pending:
            pending, self._pending = self._pending, []
            # Relaxed writes commit on their own first, so they never wait for an fsync.
            relaxed = [w for w in pending if not w[1]]
            durable = [w for w in pending if w[1]]
            for batch in (relaxed, durable):
                if batch:
                    await self._commit_and_tell(batch)

    async def _commit_and_tell(self, batch: list[tuple[Work, bool, asyncio.Future[None]]]) -> None:
        try:
            await self._run(functools.partial(self._commit, batch))
        except BaseException as exc:  # the whole batch failed: tell every waiter
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            return
        for _, _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    def _commit(self, batch: list[tuple[Work, bool, asyncio.Future[None]]]) -> None:
        conn = self._require()
        self._set_level(conn, any(durable for _, durable, _ in batch))
        conn.execute("BEGIN IMMEDIATE")
        try:
            for work, _, _ in batch:
                work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _set_level(self, conn: sqlite3.Connection, durable: bool) -> None:
        level = self._synchronous if durable else "NORMAL"
        if level != self._level:
            conn.execute(f"PRAGMA synchronous={level}")
            self._level = level

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("database is not open")
        return self._conn
