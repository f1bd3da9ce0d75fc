"""Outbox, dead letters and delivery records in SQLite, for the embedded backend.

Same semantics as `router.delivery.outbox.MemoryOutbox` (the reference): items are handed out
in `seq` order, dead letters keep their lane order on replay, and a replay gets new seqs.

Per delivered notification the Dispatcher costs no read of its own: `holds` is answered from
memory (see `SqliteOutbox.holds`), `already_delivered` once per batch (`delivered_among`), and
the record and the outbox delete are one write (`mark_delivered_recorded`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import orjson

from router.backends.embedded.sqlite import Database
from router.delivery.outbox import DeadLetter, OutboxItem
from router.delivery.records import DeliveryStore, sending_group
from router.model import Notification

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    receiver  TEXT NOT NULL,
    group_key TEXT NOT NULL,
    body      BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id        TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    receiver  TEXT NOT NULL,
    group_key TEXT NOT NULL,
    body      BLOB NOT NULL,
    reason    TEXT NOT NULL,
    failed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_lane ON dead_letters (receiver, group_key, seq);
CREATE INDEX IF NOT EXISTS dead_letters_failed ON dead_letters (failed_at);
CREATE TABLE IF NOT EXISTS deliveries (
    notification_id TEXT NOT NULL,
    receiver        TEXT NOT NULL,
    at              REAL NOT NULL,
    PRIMARY KEY (notification_id, receiver)
);
CREATE INDEX IF NOT EXISTS deliveries_at ON deliveries (at);
-- `group_key`: the group whose delivery wrote the ref (NULL: written outside a delivery);
-- `at`: when it was last written. Retention prunes refs by both.
CREATE TABLE IF NOT EXISTS delivery_refs (
    receiver  TEXT NOT NULL,
    key       TEXT NOT NULL,
    ref       BLOB NOT NULL,
    group_key TEXT,
    at        REAL,
    PRIMARY KEY (receiver, key)
);
"""


def migrate(conn: sqlite3.Connection, now: float) -> None:
    """Bring `delivery_refs` of an older database up to `SCHEMA`: its refs count as written
    `now`, by no group (so they are kept for the retention age from the upgrade)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(delivery_refs)")}
    if "at" not in columns:
        conn.execute("ALTER TABLE delivery_refs ADD COLUMN group_key TEXT")
        conn.execute("ALTER TABLE delivery_refs ADD COLUMN at REAL")
        conn.execute("UPDATE delivery_refs SET at = ?", (now,))
    conn.execute("CREATE INDEX IF NOT EXISTS delivery_refs_at ON delivery_refs (at)")


def insert_notifications(conn: sqlite3.Connection, notifications: Sequence[Notification]) -> None:
    """Enqueue inside the caller's transaction (the engine's atomic commit)."""
    conn.executemany(
        "INSERT OR IGNORE INTO outbox (id, receiver, group_key, body) VALUES (?, ?, ?, ?)",
        [(n.id, n.receiver, n.group_key, n.model_dump_json().encode()) for n in notifications],
    )


def _notification(body: bytes) -> Notification:
    return Notification.model_validate_json(body)


class _DeadLanes:
    """What this process knows about one database's dead-letter lanes (see SqliteOutbox)."""

    def __init__(self) -> None:
        self.lanes: set[tuple[str, str]] = set()  # every lane that may hold a dead letter
        self.loaded: asyncio.Future[None] | None = None  # the table's lanes were read in
        self.added = 0  # dead_letter calls so far: a lookup racing one keeps its lane


_DEAD_LANES: weakref.WeakKeyDictionary[Database, _DeadLanes] = weakref.WeakKeyDictionary()


class _Records:
    """Delivery records (item id, notification id, receiver) waiting for one write."""

    __slots__ = ("rows", "waiters")

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []
        self.waiters: list[asyncio.Future[None]] = []  # one per row: its caller


class SqliteOutbox:
    """`Outbox`, `DeadLetters` and `RecordingOutbox` over the embedded database.

    `holds` knows which lanes may have dead letters: those in the table when it first looked,
    plus every lane dead-lettered through this database object since (by any SqliteOutbox on
    it). Only the delivering process writes dead letters (one router per database); other
    writers only take them away (`dlq replay` in another process), so a lane not in that set
    certainly holds nothing and is answered without a read, and a lane in it is looked up and
    dropped from the set once empty.
    """

    def __init__(self, db: Database, now: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = now  # wall-clock seconds, injected by tests
        dead = _DEAD_LANES.get(db)
        if dead is None:
            dead = _DEAD_LANES[db] = _DeadLanes()
        self._dead = dead
        self._records: _Records | None = None  # the next write of delivery records
        self._record_writes: set[asyncio.Task[None]] = set()  # (kept from the GC meanwhile)

    async def pending(self, limit: int, after: int | None = None) -> list[OutboxItem]:
        def q(conn: sqlite3.Connection) -> list[tuple[int, str, bytes]]:
            return conn.execute(
                "SELECT seq, id, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after or 0, limit),
            ).fetchall()

        rows = await self._db.read(q)
        return [OutboxItem(id=i, seq=s, notification=_notification(b)) for s, i, b in rows]

    async def mark_delivered(self, ids: Sequence[str]) -> None:
        await self._db.write_batched(
            lambda c: c.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids]),
            durable=False,
        )

    def records_into(self, store: DeliveryStore) -> bool:
        return isinstance(store, SqliteDeliveryStore) and store.db is self._db

    async def mark_delivered_recorded(self, item_id: str, notification_id: str,
                                      receiver: str) -> None:
        """Joins the records waiting for the next relaxed group commit: one queued write (two
        `executemany`) for all of them, instead of a queued write (a closure, two statements)
        per delivered notification."""
        batch = self._records
        if batch is None:
            batch = self._records = _Records()
            # Its own task: a caller cancelled (a drain cut off) leaves the others' write
            # alone, and its own record lands anyway, as a queued write always did.
            self._record_writes.add(task := asyncio.create_task(self._write_records(batch)))
            task.add_done_callback(self._record_writes.discard)
        done = asyncio.get_running_loop().create_future()
        batch.rows.append((item_id, notification_id, receiver))
        batch.waiters.append(done)
        await done

    async def _write_records(self, batch: _Records) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if self._records is batch:
                self._records = None  # closed: later records go to the next commit
            at = self._now()
            conn.executemany(_RECORD, [(n, r, at) for _, n, r in batch.rows])
            conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i, _, _ in batch.rows])

        error: BaseException | None = None
        try:
            await self._db.write_batched(work, durable=False)
        except Exception as exc:  # its callers raise it: nobody awaits this task
            error = exc
        except BaseException as exc:
            error = exc
            raise
        finally:
            if self._records is batch:  # the write failed before it ran
                self._records = None
            for waiter in batch.waiters:
                if waiter.done():
                    continue  # its caller was cancelled
                if error is None:
                    waiter.set_result(None)
                elif isinstance(error, Exception):
                    waiter.set_exception(error)
                else:
                    waiter.cancel()  # the write itself was cancelled (shutdown)

    async def dead_letter(self, item: OutboxItem, reason: str) -> None:
        n = item.notification
        # Before the write: from now on `holds` looks this lane up.
        self._dead.lanes.add((n.receiver, n.group_key))
        self._dead.added += 1

        def work(conn: sqlite3.Connection) -> None:
            deleted = conn.execute("DELETE FROM outbox WHERE id = ?", (item.id,)).rowcount
            if deleted:
                conn.execute(
                    "INSERT OR REPLACE INTO dead_letters "
                    "(id, seq, receiver, group_key, body, reason, failed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (item.id, item.seq, n.receiver, n.group_key, n.model_dump_json().encode(),
                     reason, self._now()),
                )

        await self._db.write_batched(work, durable=False)

    async def list(self, receiver: str | None = None) -> list[DeadLetter]:
        def q(conn: sqlite3.Connection) -> list[tuple[str, int, bytes, str, float]]:
            sql = "SELECT id, seq, body, reason, failed_at FROM dead_letters"
            args: tuple[str, ...] = ()
            if receiver is not None:
                sql += " WHERE receiver = ?"
                args = (receiver,)
            return conn.execute(sql + " ORDER BY seq", args).fetchall()

        return [
            DeadLetter(id=i, seq=s, notification=_notification(b), reason=r,
                       failed_at=datetime.fromtimestamp(f, UTC))
            for i, s, b, r, f in await self._db.read(q)
        ]

    async def replay(self, id: str | None = None, receiver: str | None = None) -> int:
        def work(conn: sqlite3.Connection) -> int:
            if id is not None:
                first = conn.execute(
                    "SELECT receiver, group_key, seq FROM dead_letters WHERE id = ?", (id,)
                ).fetchone()
                if first is None:
                    return 0
                rows = conn.execute(
                    "SELECT id, receiver, group_key, body FROM dead_letters "
                    "WHERE receiver = ? AND group_key = ? AND seq >= ? ORDER BY seq", first
                ).fetchall()
            elif receiver is not None:
                rows = conn.execute(
                    "SELECT id, receiver, group_key, body FROM dead_letters "
                    "WHERE receiver = ? ORDER BY seq", (receiver,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT id, receiver, group_key, body FROM dead_letters ORDER BY seq"
                ).fetchall()
            for row in rows:
                conn.execute("DELETE FROM dead_letters WHERE id = ?", (row[0],))
                conn.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
                conn.execute(
                    "INSERT INTO outbox (id, receiver, group_key, body) VALUES (?, ?, ?, ?)", row
                )
            return len(rows)

        return await self._db.transaction(work)

    async def holds(self, receiver: str, group_key: str) -> bool:
        dead = self._dead
        loaded = dead.loaded
        if loaded is None or not loaded.done():
            if loaded is None:
                loaded = dead.loaded = asyncio.ensure_future(self._load_dead_lanes())
            try:
                await asyncio.shield(loaded)
            except Exception:
                dead.loaded = None  # look again next time
                raise
        lane = (receiver, group_key)
        if lane not in dead.lanes:
            return False

        def q(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "SELECT 1 FROM dead_letters WHERE receiver = ? AND group_key = ? LIMIT 1",
                lane,
            ).fetchone() is not None

        before = dead.added
        held = await self._db.read(q)
        if not held and dead.added == before:  # no dead letter was added meanwhile
            dead.lanes.discard(lane)
        return held

    async def _load_dead_lanes(self) -> None:
        rows = await self._db.read(lambda c: c.execute(
            "SELECT DISTINCT receiver, group_key FROM dead_letters").fetchall())
        self._dead.lanes.update((r, g) for r, g in rows)

    async def prune(self, older_than_seconds: float) -> int:
        """Delete dead letters parked more than `older_than_seconds` ago (nobody replayed
        them); returns how many. A lane in `holds`' set that empties is looked up once more."""
        return await self._db.delete_in_chunks(
            "dead_letters", "failed_at < ?", (self._now() - older_than_seconds,))

    async def count_pending(self) -> int:
        row = await self._db.read(lambda c: c.execute("SELECT count(*) FROM outbox").fetchone())
        return int(row[0])


_RECORD = "INSERT OR IGNORE INTO deliveries (notification_id, receiver, at) VALUES (?, ?, ?)"
_IN_CHUNK = 500  # ids per `IN (...)`, well below SQLite's variable limit


class SqliteDeliveryStore:
    """`DeliveryStore` and `BatchDeliveryStore`: what was sent, and vendor references (Slack
    ts, Statuspage id)."""

    def __init__(self, db: Database, now: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = now  # wall-clock seconds, injected by tests

    @property
    def db(self) -> Database:
        return self._db

    async def delivered_among(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        wanted = set(keys)
        ids = sorted({i for i, _ in wanted})
        if not ids:
            return set()

        def q(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows: list[tuple[str, str]] = []
            for j in range(0, len(ids), _IN_CHUNK):
                chunk = ids[j:j + _IN_CHUNK]
                rows += conn.execute(
                    "SELECT notification_id, receiver FROM deliveries WHERE notification_id "
                    f"IN ({','.join('?' * len(chunk))})", chunk,
                ).fetchall()
            return rows

        return {(i, r) for i, r in await self._db.read(q) if (i, r) in wanted}

    async def already_delivered(self, notification_id: str, receiver: str) -> bool:
        def q(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "SELECT 1 FROM deliveries WHERE notification_id = ? AND receiver = ?",
                (notification_id, receiver),
            ).fetchone() is not None

        return await self._db.read(q)

    async def record(self, notification_id: str, receiver: str) -> None:
        at = self._now()
        await self._db.write_batched(
            lambda c: c.execute(_RECORD, (notification_id, receiver, at)), durable=False)

    async def get_ref(self, receiver: str, key: str) -> dict[str, str] | None:
        def q(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT ref FROM delivery_refs WHERE receiver = ? AND key = ?", (receiver, key)
            ).fetchone()
            return None if row is None else bytes(row[0])

        raw = await self._db.read(q)
        if raw is None:
            return None
        ref: dict[str, str] = orjson.loads(raw)
        return ref

    async def put_ref(self, receiver: str, key: str, ref: dict[str, str]) -> None:
        row = (receiver, key, orjson.dumps(ref), sending_group.get(), self._now())
        await self._db.write_batched(lambda c: c.execute(
            "INSERT OR REPLACE INTO delivery_refs (receiver, key, ref, group_key, at) "
            "VALUES (?, ?, ?, ?, ?)", row,
        ), durable=False)

    async def prune(self, older_than_seconds: float) -> int:
        """Delete delivery records older than `older_than_seconds`; returns how many. A record
        is what stops a resend after a crash between the vendor's answer and the outbox
        delete, so one whose notification is (again) in the outbox stays."""
        return await self._db.delete_in_chunks(
            "deliveries",
            "at < ? AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.id = notification_id)",
            (self._now() - older_than_seconds,))
