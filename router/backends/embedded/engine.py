"""The engine on the embedded backend: consume the SQLite log, decide, commit atomically.

Each step reads the next events after the consumed position and hands them to the engine's
step (`router.engine.runner`, the same on both backends), which runs them (and any due
timers) through the in-memory `Engine` and commits here (`EngineStore`): the changed group
states, the new outbox rows and the new position in ONE transaction. A crash before the commit
replays the same events from the same state (the decisions are deterministic, ids included); a
crash after it replays nothing. A failed commit rolls back, and `recover` restores memory from
the database before the events are read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import orjson
from pydantic import TypeAdapter

from router.backends.embedded.outbox import insert_notifications
from router.backends.embedded.sqlite import Database
from router.backends.tasks import cancelled
from router.engine.engine import Batch, Engine
from router.engine.runner import Outcome, step_safely
from router.engine.state import EngineContext
from router.incidents import Incident
from router.metrics import EngineMetrics
from router.model import Event, utcnow

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS engine_state (
    key  TEXT PRIMARY KEY,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS engine_position (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    offset INTEGER NOT NULL
);
-- The incident view (router.incidents.Incident as JSON), written with the engine's commit.
CREATE TABLE IF NOT EXISTS incidents (
    id        TEXT PRIMARY KEY,
    group_key TEXT NOT NULL,
    status    TEXT NOT NULL,
    severity  TEXT NOT NULL,
    opened_at REAL NOT NULL,
    body      BLOB NOT NULL,
    resolved_at REAL  -- retention deletes resolved incidents by this age
);
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_at DESC);
CREATE INDEX IF NOT EXISTS incidents_group ON incidents (group_key);
-- The cursor of GET /api/v1/incidents: (opened_at, id) descending.
CREATE INDEX IF NOT EXISTS incidents_page ON incidents (opened_at, id);
"""

_UPSERT_INCIDENT = """
INSERT INTO incidents (id, group_key, status, severity, opened_at, body, resolved_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status, severity = excluded.severity, body = excluded.body,
    resolved_at = excluded.resolved_at
"""


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a database made by an older version up to `SCHEMA` (runs at every open)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(incidents)")}
    if "resolved_at" not in columns:
        conn.execute("ALTER TABLE incidents ADD COLUMN resolved_at REAL")
        resolved = conn.execute(
            "SELECT id, opened_at, body FROM incidents WHERE status = 'resolved'").fetchall()
        conn.executemany("UPDATE incidents SET resolved_at = ? WHERE id = ?", [
            (_stored_resolved_at(body, opened_at), incident_id)
            for incident_id, opened_at, body in resolved
        ])
    conn.execute("CREATE INDEX IF NOT EXISTS incidents_resolved ON incidents (resolved_at)"
                 " WHERE resolved_at IS NOT NULL")


def _stored_resolved_at(body: bytes, opened_at: float) -> float:
    """`resolved_at` of a stored incident; its opening time if the body does not say."""
    try:
        value = orjson.loads(body).get("resolved_at")
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError, TypeError):
        return opened_at


def _resolved_at(incident: Incident) -> float | None:
    return None if incident.resolved_at is None else incident.resolved_at.timestamp()

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
FRESH_LIMIT = 100_000  # events held in memory for the engine; beyond, it reads the log


class EmbeddedEngineRunner:
    def __init__(self, db: Database, engine: Engine, metrics: EngineMetrics,
                 on_outbox: Callable[[], None] = lambda: None, batch_size: int = 500,
                 on_progress: Callable[[], None] = lambda: None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self.clock = clock
        self.engine = engine
        self._metrics = metrics
        self.on_outbox = on_outbox
        self.on_progress = on_progress  # after each commit (the intake gate looks again)
        self._batch_size = batch_size
        self._position = 0
        # Events committed by this process's log, by offset, not yet decided: the engine
        # takes them from here instead of reading and decoding the rows it just wrote. What is
        # missing (a restart, an overflow) is read from the log as before.
        self._fresh: dict[int, Event] = {}
        self._last = 0  # highest offset known to be in the log
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        # Test seam: called inside each commit's transaction after its writes (raising rolls
        # the transaction back, as a failing disk would).
        self.before_commit: Callable[[sqlite3.Connection], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._restore()
        self._metrics.owned_partitions.set(1)
        self._task = asyncio.create_task(self._run(), name="engine")

    async def stop(self) -> None:
        await cancelled(self._task)
        self._task = None

    def set_context(self, context: EngineContext) -> None:
        self.engine.context = context

    @property
    def lag(self) -> int:
        """Events appended to the log and not decided yet."""
        return max(0, self._last - self._position)

    def appended(self, first: int, events: Sequence[Event]) -> None:
        """Called by the log after each commit with the offset of its first event."""
        if len(self._fresh) < FRESH_LIMIT:
            for offset, event in enumerate(events, first):
                self._fresh[offset] = event
        self._last = max(self._last, first + len(events) - 1)
        self._idle.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Wait until every event appended so far has been decided (tests, shutdown)."""
        self._idle.clear()
        self._wake.set()
        await self._idle.wait()

    # --- the loop ----------------------------------------------------------------------------

    async def _restore(self) -> None:
        started = time.perf_counter()

        def q(conn: sqlite3.Connection) -> tuple[list[tuple[str, bytes]], int]:
            rows = conn.execute("SELECT key, body FROM engine_state").fetchall()
            pos = conn.execute("SELECT offset FROM engine_position WHERE id = 1").fetchone()
            return rows, (pos[0] if pos else 0)

        rows, self._position = await self._db.read(q)
        self.engine.clear()
        for key, body in rows:
            self.engine.load(key, bytes(body))
        self._metrics.groups.set(len(self.engine))
        self._metrics.restore_seconds.set(time.perf_counter() - started)
        log.info("engine restored %d groups at log position %d", len(rows), self._position)

    async def _run(self) -> None:
        while True:
            # Cleared before reading the log: an append that commits while this step runs
            # sets it again, so its events are never left waiting for the next wake-up.
            self._wake.clear()
            try:
                busy = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the log could not be read: as a failed commit
                self._metrics.aborts.inc()
                await self.recover(exc)
                continue
            if busy or self._wake.is_set():
                # Reads and commits run inline and need not yield: let intake and delivery
                # have the loop between two batches of a backlog.
                await asyncio.sleep(0)
                continue
            self._idle.set()
            deadline = self.engine.next_deadline()
            timeout = None
            if deadline is not None:
                timeout = max(0.0, (deadline - self.clock()).total_seconds())
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the stop's cancel.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def step(self) -> bool:
        """Decide the next batch of log events and due timers; True if there may be more (or
        the step failed and the events are to be read again)."""
        events, position = self._take_fresh()
        if not events:
            events, position = await self._read_log()
        outcome = await step_safely(self.engine, self, events, position if events else None,
                                    self.clock(), self._metrics)
        self._metrics.lag.set(self.lag)
        self._metrics.groups.set(len(self.engine))
        return (outcome is Outcome.FAILED or len(events) == self._batch_size
                or (position + 1) in self._fresh)

    async def recover(self, error: Exception) -> None:
        """`EngineStore`: the commit did not happen; rebuild memory from what is durable (the
        position included), after a pause, so the events are read and decided again."""
        log.error("engine step failed; restoring state from the database", exc_info=error)
        await asyncio.sleep(1)
        with contextlib.suppress(Exception):
            await self._restore()

    def _take_fresh(self) -> tuple[list[Event], int]:
        """The events right after the position that this process appended, in offset order,
        and the offset of the last one."""
        events: list[Event] = []
        fresh, offset = self._fresh, self._position
        while len(events) < self._batch_size:
            event = fresh.pop(offset + 1, None)
            if event is None:
                break
            events.append(event)
            offset += 1
        return events, offset

    async def _read_log(self) -> tuple[list[Event], int]:
        """The next events from the log itself (after a restart, or what memory dropped)."""
        def q(conn: sqlite3.Connection) -> tuple[list[tuple[int, bytes]], int]:
            rows = conn.execute(
                "SELECT offset, body FROM log WHERE offset > ? ORDER BY offset LIMIT ?",
                (self._position, self._batch_size),
            ).fetchall()
            last = conn.execute("SELECT max(offset) FROM log").fetchone()[0] or 0
            return rows, last

        rows, last = await self._db.read(q)
        self._last = max(self._last, last)
        if not rows:
            return [], self._position
        up_to = rows[-1][0]
        for offset in [o for o in self._fresh if o <= up_to]:
            del self._fresh[offset]
        return [_EVENT.validate_python(orjson.loads(body)) for _, body in rows], up_to

    async def commit(self, batch: Batch, position: int | None) -> None:
        """`EngineStore`: the batch and the position after its events (None: unchanged) in one
        transaction."""
        if position is None:
            position = self._position
        before_commit = self.before_commit

        def work(conn: sqlite3.Connection) -> None:
            upserts = [(k, v) for k, v in batch.encoded.items() if v is not None]
            deletes = [(k,) for k, v in batch.encoded.items() if v is None]
            conn.executemany(
                "INSERT OR REPLACE INTO engine_state (key, body) VALUES (?, ?)", upserts
            )
            conn.executemany("DELETE FROM engine_state WHERE key = ?", deletes)
            conn.executemany(_UPSERT_INCIDENT, [
                (i.id, i.group_key, i.status.value, i.severity.value, i.opened_at.timestamp(),
                 i.model_dump_json().encode(), _resolved_at(i))
                for i in batch.incidents.values()
            ])
            insert_notifications(conn, batch.notifications)
            conn.execute(
                "INSERT INTO engine_position (id, offset) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET offset = excluded.offset",
                (position,),
            )
            if before_commit is not None:
                before_commit(conn)

        await self._db.transaction(work)
        self._position = position
        self.on_progress()
        if batch.notifications:
            self.on_outbox()
