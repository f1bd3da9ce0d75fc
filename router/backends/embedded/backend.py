"""Embedded backend: the log, the current-alerts view and (with the engine) state and outbox
in one SQLite database (WAL). The default, so one process works out of the box.
"""

from __future__ import annotations

import heapq
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import orjson
from prometheus_client import CollectorRegistry

from router.backends.base import DeliveryProgress, LogEvent, LogUnavailable, StoreUnavailable
from router.backends.embedded import engine as embedded_engine
from router.backends.embedded import outbox as embedded_outbox
from router.backends.embedded.engine import EmbeddedEngineRunner
from router.backends.embedded.metrics import StorageMetrics
from router.backends.embedded.outbox import SqliteDeliveryStore, SqliteOutbox
from router.backends.embedded.retention import Retention, RetentionPolicy
from router.backends.embedded.sqlite import Database
from router.backends.filters import (
    ALERT_FIELDS,
    DERIVED_LABELS,
    AlertField,
    AlertQuery,
    LabelTest,
    seen_labels,
)
from router.backends.gate import IntakeGate, over_limits
from router.backends.pages import Page, SortKey, decode_cursor, encode_cursor
from router.config import Config, EmbeddedBackendConfig, IntakeGateConfig
from router.delivery.outbox import DeadLetters
from router.engine.engine import Engine
from router.engine.state import EngineContext
from router.incidents import Incident
from router.metrics import EngineMetrics
from router.model import Alert, AlertEvent, AlertsEvent, event_key, utcnow
from router.noise.silences import Silence

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    offset      INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        BLOB NOT NULL,
    appended_at REAL NOT NULL
);
-- The read side of GET /api/v1/alerts: the latest state of each alert by the source's clock.
CREATE TABLE IF NOT EXISTS alerts (
    key        TEXT PRIMARY KEY,
    source     TEXT NOT NULL,
    status     TEXT NOT NULL,
    event_time REAL NOT NULL,
    body       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status, source);
-- The cursor of GET /api/v1/alerts: (event_time, key) descending.
CREATE INDEX IF NOT EXISTS alerts_page ON alerts (event_time, key);
CREATE INDEX IF NOT EXISTS alerts_resolved ON alerts (event_time) WHERE status = 'resolved';
"""

# The console's filters and counts (router.backends.filters) on fields only the body holds,
# as indexed expressions; queries must spell them exactly as `_ALERT_SQL` does to use them.
# (After every table: `incidents` comes with the engine's schema.)
READ_INDEXES = """
CREATE INDEX IF NOT EXISTS alerts_severity
    ON alerts (json_extract(CAST(body AS TEXT), '$.severity'));
CREATE INDEX IF NOT EXISTS alerts_service
    ON alerts (json_extract(CAST(body AS TEXT), '$.service'));
CREATE INDEX IF NOT EXISTS alerts_team ON alerts (json_extract(CAST(body AS TEXT), '$.team'));
CREATE INDEX IF NOT EXISTS alerts_group_key
    ON alerts (json_extract(CAST(body AS TEXT), '$.group_key'));
-- The incident list: open ones, worst severity first, then the longest open.
CREATE INDEX IF NOT EXISTS incidents_urgent ON incidents (severity, opened_at, id)
    WHERE status != 'resolved';
"""

def _in_body(field: str) -> str:
    # CAST: SQLite's JSON functions refuse a BLOB.
    return f"json_extract(CAST(body AS TEXT), '$.{field}')"


_ALERT_SQL: dict[AlertField, str] = {
    "status": "status", "source": "source", "severity": _in_body("severity"),
    "service": _in_body("service"), "team": _in_body("team"), "group_key": _in_body("group_key"),
}

# The classified fields silences see as labels (filters.DERIVED_LABELS), in its order.
_DERIVED_PATHS = ", ".join(f"'$.{field}'" for field in DERIVED_LABELS.values())

_UPSERT_ALERT = """
INSERT INTO alerts (key, source, status, event_time, body) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    source = excluded.source, status = excluded.status,
    event_time = excluded.event_time, body = excluded.body
WHERE excluded.event_time >= alerts.event_time
"""


# A WHERE condition and its value(s): applied only when the value is given (see `_where`).
Condition = tuple[str, str | tuple[str | bytes, ...] | None]

# Told after each commit: the log offset of the first event and the events, in order.
Committed = Callable[[int, Sequence[LogEvent]], None]


_alert_json = Alert.__pydantic_serializer__.to_json  # bytes, without a str in between


class EmbeddedLog:
    """`Log` over SQLite: `append` returns once the events are committed to disk."""

    def __init__(self, db: Database, gate: IntakeGate | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._gate = gate
        self._clock = clock
        self.on_commit: list[Committed] = []

    async def append(self, events: Sequence[LogEvent]) -> None:
        if self._gate is not None:
            await self._gate.wait()  # before the append: a 2xx still means committed
        now = self._clock().timestamp()
        rows: list[tuple[str, str, bytes, float]] = []
        views: list[tuple[str, str, str, float, bytes]] = []
        for e in events:
            if isinstance(e, AlertEvent):
                a = e.alert
                body = _alert_json(a)  # serialised once, for both tables
                rows.append((event_key(e), "alert", b'{"kind":"alert","alert":' + body + b"}",
                             now))
                views.append((a.key, a.source, a.status.value, a.event_time.timestamp(), body))
            elif isinstance(e, AlertsEvent):
                bodies = [_alert_json(a) for a in e.alerts]
                rows.append((event_key(e), "alerts",
                             b'{"kind":"alerts","alerts":[' + b",".join(bodies) + b"]}", now))
                views += [(a.key, a.source, a.status.value, a.event_time.timestamp(), body)
                          for a, body in zip(e.alerts, bodies, strict=True)]
            else:
                rows.append((event_key(e), e.kind, e.__pydantic_serializer__.to_json(e), now))

        first = 0

        def work(conn: sqlite3.Connection) -> None:
            nonlocal first
            conn.executemany(
                "INSERT INTO log (key, kind, body, appended_at) VALUES (?, ?, ?, ?)", rows
            )
            # One writer, one statement: the rows took consecutive offsets ending here.
            first = conn.execute("SELECT last_insert_rowid()").fetchone()[0] - len(rows) + 1
            conn.executemany(_UPSERT_ALERT, views)

        try:
            await self._db.write_batched(work)
        except sqlite3.Error as exc:
            log.error("log append failed: %s", exc)
            raise LogUnavailable(f"log store unavailable: {exc.__class__.__name__}") from exc
        if rows:
            for callback in self.on_commit:
                callback(first, events)


@asynccontextmanager
async def dead_letters(config: Config, cfg: EmbeddedBackendConfig) -> AsyncIterator[DeadLetters]:
    """The dead-letter store alone, for `incident-router dlq` in a process of its own: the
    database's outbox tables on a connection of their own, no engine (a running router may
    own the database; SQLite's locking keeps the two apart)."""
    db = Database(config.resolve(cfg.path), embedded_outbox.SCHEMA)
    try:
        await db.open()
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open {config.resolve(cfg.path)}: {exc}") from exc
    try:
        yield SqliteOutbox(db)
    finally:
        await db.close()


def build(config: Config, cfg: EmbeddedBackendConfig, context: EngineContext,
          metrics: EngineMetrics, registry: CollectorRegistry | None = None) -> EmbeddedBackend:
    """The backend `cfg` (the `backend:` section of `config`, whose file relative paths are
    resolved against) describes."""
    return EmbeddedBackend(config.resolve(cfg.path), context, metrics, gate=cfg,
                           retention=RetentionPolicy.of(cfg), registry=registry)


class EmbeddedBackend:
    """Owns the database: the log, the engine consuming it, the outbox and dead letters, and
    their retention. `clock` is the time of every part (tests and benchmarks inject one)."""

    def __init__(self, path: Path, context: EngineContext, metrics: EngineMetrics,
                 synchronous: str = "FULL", gate: IntakeGateConfig | None = None, *,
                 retention: RetentionPolicy | None = None,
                 registry: CollectorRegistry | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        schema = SCHEMA + embedded_engine.SCHEMA + embedded_outbox.SCHEMA + READ_INDEXES
        self._limits = gate or IntakeGateConfig()
        self.gate = IntakeGate(self._behind, self._limits.intake_max_wait_seconds)
        def migrate(conn: sqlite3.Connection) -> None:
            embedded_engine.migrate(conn)
            embedded_outbox.migrate(conn, clock().timestamp())

        self.db = Database(path, schema, synchronous=synchronous, migrate=migrate)
        self.log = EmbeddedLog(self.db, self.gate, clock)

        def seconds() -> float:  # delivery records and dead letters keep wall-clock seconds
            return clock().timestamp()

        self.outbox = SqliteOutbox(self.db, seconds)
        self.records = SqliteDeliveryStore(self.db, seconds)
        self.engine = EmbeddedEngineRunner(self.db, Engine(context), metrics,
                                           on_progress=self.gate.poke, clock=clock)
        self.retention = Retention(self.db, self.outbox, self.records,
                                   retention or RetentionPolicy(), clock,
                                   StorageMetrics(registry or CollectorRegistry()))
        self.log.on_commit.append(self.engine.appended)
        # Notifications waiting for delivery: `watch_delivery` points this at the Dispatcher.
        self.delivery_backlog: Callable[[], int] = lambda: 0

    def _behind(self) -> bool:
        return over_limits(self._limits, self.engine.lag, self.delivery_backlog())

    def watch_delivery(self, delivery: DeliveryProgress) -> None:
        """The intake gate watches the Dispatcher: the SQLite outbox does not know what it
        holds in memory."""
        self.delivery_backlog = lambda: delivery.backlog
        delivery.on_done = self.gate.poke

    async def start(self) -> None:
        await self.db.open()
        await self.db.ensure_incremental_vacuum()
        await self.engine.start()
        await self.retention.start()

    async def stop(self) -> None:
        await self.retention.stop()
        await self.engine.stop()
        await self.db.close()

    async def ready(self) -> bool:
        try:
            await self.db.read(lambda c: c.execute("SELECT 1").fetchone())
        except sqlite3.Error:
            return False
        return True

    async def _select_bodies(self, table: str, conditions: list[Condition],
                             order: str, limit: int) -> list[bytes]:
        """`body` of the rows matching every condition (see `_where`)."""
        where, args = _where(conditions)
        query = f"SELECT body FROM {table}{_sql_where(where)} ORDER BY {order} LIMIT ?"

        def q(conn: sqlite3.Connection) -> list[bytes]:
            return [r[0] for r in conn.execute(query, (*args, limit))]

        return await self.db.read(q)

    async def current_alerts(
        self, status: str | None = None, source: str | None = None, limit: int = 1000
    ) -> list[Alert]:
        conditions: list[Condition] = [("status = ?", status), ("source = ?", source)]
        bodies = await self._select_bodies("alerts", conditions, "event_time DESC", limit)
        return [Alert.model_validate(orjson.loads(b)) for b in bodies]

    async def incidents(self, status: str | None = None, limit: int = 200,
                        group_key: str | None = None) -> list[Incident]:
        """Newest first; `status` one of investigating|identified|monitoring|resolved, or
        "open" for every unresolved one."""
        bodies = await self._select_bodies("incidents", _incident_conditions(status, group_key),
                                           "opened_at DESC, rowid DESC", limit)
        return [Incident.model_validate_json(b) for b in bodies]

    async def incident(self, incident_id: str) -> Incident | None:
        def q(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT body FROM incidents WHERE id = ?",
                               (incident_id,)).fetchone()
            return row[0] if row else None

        body = await self.db.read(q)
        return Incident.model_validate_json(body) if body is not None else None

    async def silences(self) -> list[Silence]:
        return self.engine.engine.silences

    async def log_size(self) -> int:
        """Events ever appended: the last offset (retention deletes consumed entries, offsets
        are never reused)."""
        row = await self.db.read(lambda c: c.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone())
        return int(row[0]) if row else 0

    # --- paginated reads (GET /api/v1/incidents, /api/v1/alerts) --------------------------

    async def incident_page(self, status: str | None = None, group_key: str | None = None,
                            limit: int = 100, cursor: str | None = None) -> Page[Incident]:
        """Newest (opened_at, id) first; `status` as in `incidents`."""
        return await self._page("incidents", "opened_at", "id",
                                _incident_conditions(status, group_key), limit, cursor,
                                Incident.model_validate_json)

    async def alert_page(self, status: str | None = None, source: str | None = None,
                         limit: int = 100, cursor: str | None = None) -> Page[Alert]:
        """Latest (event_time, key) first."""
        return await self.alert_search(AlertQuery(status=status, source=source), limit, cursor)

    # --- the console's filtered and summary reads ------------------------------------------

    async def alert(self, key: str) -> Alert | None:
        def q(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT body FROM alerts WHERE key = ?", (key,)).fetchone()
            return row[0] if row else None

        body = await self.db.read(q)
        return Alert.model_validate(orjson.loads(body)) if body is not None else None

    async def alert_search(self, query: AlertQuery, limit: int = 100,
                           cursor: str | None = None) -> Page[Alert]:
        return await self._page("alerts", "event_time", "key", _alert_conditions(query), limit,
                                cursor, lambda b: Alert.model_validate(orjson.loads(b)))

    async def alert_counts(self, by: AlertField, query: AlertQuery) -> dict[str, int]:
        where, args = _where(_alert_conditions(query))
        column = _ALERT_SQL[by]
        sql = f"SELECT {column}, count(*) FROM alerts{_sql_where(where)} GROUP BY 1"
        rows = await self.db.read(lambda c: c.execute(sql, args).fetchall())
        counts: dict[str, int] = {}
        for value, n in rows:  # NULL and "" are both "none"
            counts[value or ""] = counts.get(value or "", 0) + int(n)
        return counts

    async def alerts_matching(self, query: AlertQuery, keeps: LabelTest,
                              limit: int = 100) -> Page[Alert]:
        where, args = _where(_alert_conditions(query))
        # One JSON parse per row (several paths: a JSON array), no alert decoded; unsorted
        # (sorting carries every row's columns through a temporary b-tree): the matches are.
        sql = (f"SELECT key, event_time, json_extract(CAST(body AS TEXT), '$.labels', "
               f"{_DERIVED_PATHS}) FROM alerts{_sql_where(where)}")

        def q(conn: sqlite3.Connection) -> tuple[list[bytes], int]:
            hits: list[tuple[float, str]] = []
            loads = orjson.loads
            for key, at, fields in conn.execute(sql, args):
                labels, *derived = loads(fields)
                if keeps(seen_labels(labels, derived)):
                    hits.append((at, key))
            keys = [key for _, key in heapq.nlargest(limit, hits)]
            marks = ", ".join("?" * len(keys))
            bodies = dict(conn.execute(f"SELECT key, body FROM alerts WHERE key IN ({marks})",
                                       keys).fetchall()) if keys else {}
            return [bodies[k] for k in keys if k in bodies], len(hits)

        bodies, total = await self.db.read(q)
        return Page(items=[Alert.model_validate(orjson.loads(b)) for b in bodies],
                    next_cursor=None, total=total)

    async def urgent_incidents(self, limit: int = 100, offset: int = 0) -> list[Incident]:
        # `status != 'resolved'` spelled as the partial index incidents_urgent has it; the
        # offset skips index entries, not decoded rows.
        sql = ("SELECT body FROM incidents WHERE status != 'resolved' "
               "ORDER BY severity, opened_at, id LIMIT ? OFFSET ?")
        rows = await self.db.read(lambda c: c.execute(sql, (limit, offset)).fetchall())
        return [Incident.model_validate_json(r[0]) for r in rows]

    async def incident_counts(self, status: str | None = None) -> dict[str, int]:
        where, args = _where(_incident_conditions(status, None))
        sql = f"SELECT severity, count(*) FROM incidents{_sql_where(where)} GROUP BY 1"
        rows = await self.db.read(lambda c: c.execute(sql, args).fetchall())
        return {str(severity): int(n) for severity, n in rows}

    async def _page(self, table: str, at: str, ident: str,
                    conditions: list[Condition], limit: int, cursor: str | None,
                    decode: Callable[[bytes], T]) -> Page[T]:
        where, args = _where(conditions)
        after = decode_cursor(table, cursor) if cursor else None
        page_where = where + ([f"({at}, {ident}) < (?, ?)"] if after else [])
        page_args = args + (list(after) if after else [])
        query = (f"SELECT body, {at}, {ident} FROM {table}{_sql_where(page_where)} "
                 f"ORDER BY {at} DESC, {ident} DESC LIMIT ?")

        def q(conn: sqlite3.Connection) -> tuple[list[tuple[bytes, float, str]], int]:
            rows = conn.execute(query, (*page_args, limit + 1)).fetchall()
            total = conn.execute(f"SELECT count(*) FROM {table}{_sql_where(where)}",
                                 args).fetchone()[0]
            return rows, int(total)

        rows, total = await self.db.read(q)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last: SortKey = (rows[-1][1], rows[-1][2])
            next_cursor = encode_cursor(table, last)
        return Page(items=[decode(r[0]) for r in rows], next_cursor=next_cursor, total=total)


def _alert_conditions(query: AlertQuery) -> list[Condition]:
    conditions: list[Condition] = [(f"{_ALERT_SQL[f]} = ?", getattr(query, f))
                                   for f in ALERT_FIELDS]
    for name, value in query.labels:  # as `AlertQuery.keeps`: the label, else the field
        path = f"$.labels.{name}"  # a plain name (AlertQuery checks it)
        field = DERIVED_LABELS.get(name)
        if field is None:
            conditions.append(("json_extract(CAST(body AS TEXT), ?) = ?", (path, value)))
        else:
            conditions.append((
                f"(json_extract(CAST(body AS TEXT), ?) = ? OR (json_extract(CAST(body AS TEXT), "
                f"?) IS NULL AND {_in_body(field)} = ? AND ? != ''))",
                (path, value, path, value, value)))
    for name, low, high in query.ranges:  # the value as `labels_of` has it, "" for none
        field = DERIVED_LABELS.get(name)
        seen = (f"coalesce(json_extract(CAST(body AS TEXT), ?), nullif({_in_body(field)}, ''), "
                f"'')" if field else "coalesce(json_extract(CAST(body AS TEXT), ?), '')")
        conditions.append((f"CAST({seen} AS BLOB) BETWEEN ? AND ?",
                           (f"$.labels.{name}", low, high)))
    return conditions


def _incident_conditions(status: str | None, group_key: str | None) -> list[Condition]:
    """`status`: an IncidentStatus value, or "open" for every unresolved one."""
    conditions: list[Condition] = [("group_key = ?", group_key)]
    if status == "open":
        conditions.append(("status != 'resolved'", None))
    else:
        conditions.append(("status = ?", status))
    return conditions


def _where(conditions: list[Condition]) -> tuple[list[str], list[object]]:
    """The conditions that apply: one with `?` when its value is given (a tuple: one value
    per `?`), one without always."""
    where: list[str] = []
    args: list[object] = []
    for sql, value in conditions:
        if "?" not in sql:
            where.append(sql)
        elif value:
            where.append(sql)
            args.extend(value if isinstance(value, tuple) else (value,))
    return where, args


def _sql_where(where: list[str]) -> str:
    return " WHERE " + " AND ".join(where) if where else ""
