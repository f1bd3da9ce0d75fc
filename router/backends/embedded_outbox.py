"""Outbox, dead letters and delivery records in SQLite, for the embedded backend.

Same semantics as `router.delivery.outbox.MemoryOutbox` (the reference): items are handed out
in `seq` order, dead letters keep their lane order on replay, and a replay gets new seqs.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from router.backends.sqlite import Database
from router.delivery.outbox import DeadLetter, OutboxItem
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
CREATE TABLE IF NOT EXISTS deliveries (
    notification_id TEXT NOT NULL,
    receiver        TEXT NOT NULL,
    at              REAL NOT NULL,
    PRIMARY KEY (notification_id, receiver)
);
CREATE TABLE IF NOT EXISTS delivery_refs (
    receiver TEXT NOT NULL,
    key      TEXT NOT NULL,
    ref      BLOB NOT NULL,
    PRIMARY KEY (receiver, key)
);
"""


def insert_notifications(conn: sqlite3.Connection, notifications: Sequence[Notification]) -> None:
    """Enqueue inside the caller's transaction (the engine's atomic commit)."""
    conn.executemany(
        "INSERT OR IGNORE INTO outbox (id, receiver, group_key, body) VALUES (?, ?, ?, ?)",
        [(n.id, n.receiver, n.group_key, n.model_dump_json().encode()) for n in notifications],
    )


def _notification(body: bytes) -> Notification:
    return Notification.model_validate(orjson.loads(body))


class SqliteOutbox:
    """`Outbox` and `DeadLetters` over the embedded database."""

    def __init__(self, db: Database) -> None:
        self._db = db

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

    async def dead_letter(self, item: OutboxItem, reason: str) -> None:
        n = item.notification

        def work(conn: sqlite3.Connection) -> None:
            deleted = conn.execute("DELETE FROM outbox WHERE id = ?", (item.id,)).rowcount
            if deleted:
                conn.execute(
                    "INSERT OR REPLACE INTO dead_letters "
                    "(id, seq, receiver, group_key, body, reason, failed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (item.id, item.seq, n.receiver, n.group_key, n.model_dump_json().encode(),
                     reason, time.time()),
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
        def q(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "SELECT 1 FROM dead_letters WHERE receiver = ? AND group_key = ? LIMIT 1",
                (receiver, group_key),
            ).fetchone() is not None

        return await self._db.read(q)

    async def count_pending(self) -> int:
        row = await self._db.read(lambda c: c.execute("SELECT count(*) FROM outbox").fetchone())
        return int(row[0])


class SqliteDeliveryStore:
    """`DeliveryStore`: what was sent, and vendor references (Slack ts, Statuspage id)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def already_delivered(self, notification_id: str, receiver: str) -> bool:
        def q(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "SELECT 1 FROM deliveries WHERE notification_id = ? AND receiver = ?",
                (notification_id, receiver),
            ).fetchone() is not None

        return await self._db.read(q)

    async def record(self, notification_id: str, receiver: str) -> None:
        await self._db.write_batched(lambda c: c.execute(
            "INSERT OR IGNORE INTO deliveries (notification_id, receiver, at) VALUES (?, ?, ?)",
            (notification_id, receiver, time.time()),
        ), durable=False)

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
        await self._db.write_batched(lambda c: c.execute(
            "INSERT OR REPLACE INTO delivery_refs (receiver, key, ref) VALUES (?, ?, ?)",
            (receiver, key, orjson.dumps(ref)),
        ), durable=False)

    async def prune(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds

        def work(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM deliveries WHERE at < ?", (cutoff,)).rowcount

        return await self._db.transaction(work)
