"""One SQLite database (WAL) with group commit: fsyncs on a worker thread, the rest inline.

Durability is chosen per write: what intake acknowledges to a source (`durable=True`) commits
with `synchronous=FULL` (the WAL is fsynced); bookkeeping that can be redone after a power loss
(engine state and outbox, recomputed deterministically from the log; delivery records, whose
loss means at worst a resend with the same vendor dedup key) commits with `NORMAL`, which
survives a process crash. A FULL commit makes everything before it durable too.

Two connections to the one file. A durable group commit runs its statements inline on the
worker connection and its COMMIT (the WAL write, the fsync, any auto-checkpoint) on a dedicated
worker thread, so the event loop keeps working while the disk syncs, and the two threads trade
the GIL once per commit rather than around every statement. Reads and relaxed writes run
inline on the event loop thread: they take microseconds, while a hop to a thread and back costs
~100 us of CPU, which made the thread the router's biggest overhead per alert. WAL lets the
inline reads run while the worker commits; writes of both kinds take turns on an asyncio lock,
so the two connections never wait for each other's write lock. Concurrent writes that arrive
while a commit is in flight are batched into the next transaction (group commit): N concurrent
requests cost one fsync, not N.
Nothing is acknowledged before its transaction commits.

The worker connection checkpoints the WAL (SQLite's auto-checkpoint on its commits, and after
every `CHECKPOINT_EVERY` inline commits), so the event loop never copies pages or syncs the
database file.

The file is created with `auto_vacuum=INCREMENTAL`, so pages freed by retention
(router.backends.embedded.retention) can be handed back with `incremental_vacuum`. SQLite can
switch an existing file to that mode only by rewriting it (VACUUM): done when the router starts
if the file is smaller than `VACUUM_AT_OPEN_MAX_BYTES`, else logged with the one-off command.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

Work = Callable[[sqlite3.Connection], object]
Pending = tuple[Work, asyncio.Future[None]]

CHECKPOINT_EVERY = 500  # inline commits between two checkpoints on the worker thread
# A VACUUM rewrites the whole file (about 1 s per 100 MB, and twice its size on disk for a
# moment): at open only for files up to this size.
VACUUM_AT_OPEN_MAX_BYTES = 256 * 1024 * 1024
INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
# The WAL file is truncated back to this size after a checkpoint (SQLite keeps it at its
# largest otherwise).
JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024

log = logging.getLogger(__name__)


class Database:
    def __init__(self, path: Path, schema: str, synchronous: str = "FULL",
                 migrate: Callable[[sqlite3.Connection], None] | None = None) -> None:
        if str(path) == ":memory:":
            # Each connection would open its own, empty database.
            raise ValueError("the embedded backend needs a database file, not :memory:")
        self._path = path
        self._schema = schema
        self._migrate = migrate  # run after the schema at open (columns added later)
        # The level for durable writes (FULL); tests and benchmarks may relax it.
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None  # the worker thread's
        self._inline: sqlite3.Connection | None = None  # the event loop thread's
        self._writing = asyncio.Lock()  # one writer at a time, across both connections
        self._durable: list[Pending] = []
        self._relaxed: list[Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._inline_commits = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open)
        self._inline = self._connect()
        self._inline.execute("PRAGMA synchronous=NORMAL")
        self._inline.execute("PRAGMA wal_autocheckpoint=0")  # the worker checkpoints

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")  # another process (the dlq CLI) writing
        return conn

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        # Takes effect only on a new, empty file: before the first table (and the WAL switch).
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        conn.executescript(self._schema)
        if self._migrate is not None:
            _in_transaction(conn, self._migrate)
        self._conn = conn

    async def ensure_incremental_vacuum(self) -> None:
        """Switch a file made before auto_vacuum=INCREMENTAL to it, if small enough (the
        router at start; not the CLI, which may share the file with a running router)."""
        async with self._writing:
            await self._run(self._switch_to_incremental_vacuum)

    def _switch_to_incremental_vacuum(self) -> None:
        conn = self._require()
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
            return
        size = self.size_bytes()
        if size > VACUUM_AT_OPEN_MAX_BYTES:
            log.warning(
                "%s is not in auto_vacuum=INCREMENTAL mode, so pruned rows will not shrink it; "
                "it is too big (%d bytes) to switch at start-up: stop the router and run "
                "sqlite3 %s 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;' once",
                self._path, size, self._path)
            return
        log.info("switching %s to auto_vacuum=INCREMENTAL (VACUUM of %d bytes)", self._path,
                 size)
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")

    @property
    def path(self) -> Path:
        return self._path

    def size_bytes(self) -> int:
        """The database file and its WAL, as they take space on disk now."""
        total = 0
        for path in (self._path, self._path.with_name(self._path.name + "-wal")):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._flusher, self._checkpoint):
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
        if self._inline is not None:
            self._inline.close()
            self._inline = None
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
        """Run a read, inline: it sees every commit so far (WAL snapshot); no writes here."""
        return fn(self._require_inline())

    async def transaction(self, fn: Callable[[sqlite3.Connection], T],
                          durable: bool = False) -> T:
        """Run `fn` in its own transaction (used by the engine for its atomic commits)."""
        async with self._writing:
            if durable:
                return await self._run(lambda: _in_transaction(self._require(), fn))
            result = _in_transaction(self._require_inline(), fn)
        self._committed_inline()
        return result

    async def delete_in_chunks(self, table: str, where: str, args: tuple[object, ...] = (),
                               chunk: int = 5_000) -> int:
        """Delete the rows of `table` matching `where`, `chunk` rows per transaction so other
        writers get their turn in between; returns how many went. Trusted SQL only."""
        sql = (f"DELETE FROM {table} WHERE rowid IN "
               f"(SELECT rowid FROM {table} WHERE {where} LIMIT ?)")
        total = 0
        while True:
            deleted: int = await self.transaction(
                lambda c: c.execute(sql, (*args, chunk)).rowcount)
            total += deleted
            if deleted < chunk:
                return total
            await asyncio.sleep(0)  # let intake and the engine have the loop

    async def incremental_vacuum(self, pages: int = 2_000) -> int:
        """Hand the free pages back to the file system, `pages` per transaction; returns the
        pages freed. The file itself shrinks at the next checkpoint."""
        freed = 0
        while True:
            async with self._writing:
                conn = self._require_inline()
                before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                # Its own transaction, run to completion: `execute` would take one step,
                # which frees one page.
                conn.executescript(f"PRAGMA incremental_vacuum({pages})")
                n = before - int(conn.execute("PRAGMA freelist_count").fetchone()[0])
            self._committed_inline()
            freed += n
            if n < pages:
                return freed
            await asyncio.sleep(0)

    async def write_batched(self, work: Work, durable: bool = True) -> None:
        """Queue `work` for the next group commit and wait until it is committed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._durable if durable else self._relaxed).append((work, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        while self._durable or self._relaxed:
            # Relaxed writes commit on their own first, so they never wait for an fsync.
            if self._relaxed:
                batch, self._relaxed = self._relaxed, []
                error: BaseException | None = None
                async with self._writing:
                    try:
                        _commit_all(self._require_inline(), batch)
                    except BaseException as exc:
                        error = exc
                _settle(batch, error)
                self._committed_inline()
            if self._durable:
                batch, self._durable = self._durable, []
                error = None
                async with self._writing:
                    try:
                        await self._commit_durable(batch)
                    except BaseException as exc:
                        error = exc
                _settle(batch, error)

    async def _commit_durable(self, batch: list[Pending]) -> None:
        """The batch's statements inline, on the worker's connection; its COMMIT (the WAL
        write, the fsync and any auto-checkpoint) on the worker thread. Python's sqlite3 lets
        go of the GIL around every statement, so statements on the worker thread made it and
        the event loop trade the GIL (and the one core) back and forth for every row; inline,
        the worker wakes once per group commit. Callers hold the write turn."""
        if self._checkpoint is not None and not self._checkpoint.done():
            # The one use of the worker's connection outside the write turn: let it finish,
            # as the worker thread's queue made every commit do before.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._checkpoint)
        conn = self._require()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for work, _ in batch:
                work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        await self._run(functools.partial(_commit, conn))

    def _committed_inline(self) -> None:
        self._inline_commits += 1
        if self._inline_commits >= CHECKPOINT_EVERY and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._inline_commits = 0
            self._checkpoint = asyncio.create_task(self._run(self._passive_checkpoint))

    async def checkpoint(self) -> None:
        """Copy every committed page into the database file and empty the WAL, on the worker
        thread: that is when a file shrunk by `incremental_vacuum` is truncated, and the WAL
        of a prune pass does not stay on disk. Holds the write turn; readers here are inline
        and brief, another process's wait on the busy timeout."""
        async with self._writing:
            await self._run(self._truncating_checkpoint)

    def _truncating_checkpoint(self) -> None:
        try:
            self._require().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", exc)

    def _passive_checkpoint(self) -> None:
        # PASSIVE: copies what no reader still needs, never waits for or blocks a writer.
        try:
            self._require().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", exc)

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("database is not open")
        return self._conn

    def _require_inline(self) -> sqlite3.Connection:
        if self._inline is None:
            raise sqlite3.ProgrammingError("database is not open")
        return self._inline


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    _commit(conn)
    return result


def _commit(conn: sqlite3.Connection) -> None:
    """COMMIT, or roll back if it fails (an I/O error, a deferred constraint): SQLite leaves
    some failed COMMITs' transactions open."""
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _commit_all(conn: sqlite3.Connection, batch: list[Pending]) -> None:
    _in_transaction(conn, lambda c: [work(c) for work, _ in batch])


def _settle(batch: list[Pending], error: BaseException | None) -> None:
    """Tell every waiter of a group commit its outcome (the whole batch failed or not)."""
    for _, fut in batch:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error if isinstance(error, Exception) else RuntimeError())
