"""Retention on the embedded backend: what may be deleted, deleted, and the file shrunk.

Every `interval` the pruner deletes, in small transactions:

- log entries the engine has consumed: the engine restores from its state and position, never
  from the log before it (see `engine`). The delete reads the committed position inside
  its own transaction, so a power loss that rolls the engine's relaxed commits back also rolls
  the delete back (the WAL keeps commit order);
- resolved alerts of the alerts view, by the source's resolve time;
- resolved incidents, by their resolve time;
- delivery records, unless their notification is in the outbox again (`prune` of the store);
- delivery refs (Slack thread ts, Statuspage incident ids, incident channels), with the group
  whose delivery wrote them: once last written longer ago than the closed-incident age and
  nothing of that group is live any more (`_DEAD_REF`);
- dead letters nobody replayed, by the time they were parked.

Then `incremental_vacuum` hands the freed pages back to the file system and a checkpoint
truncates the file and empties the WAL. What is still needed (unconsumed log entries, firing
alerts, open incidents, the outbox) is never touched. An age of zero keeps that kind forever.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from router.backends.embedded.metrics import TABLES, StorageMetrics
from router.backends.embedded.outbox import SqliteDeliveryStore, SqliteOutbox
from router.backends.embedded.sqlite import Database
from router.backends.tasks import Periodic
from router.config import EmbeddedBackendConfig

log = logging.getLogger(__name__)

_DEFAULTS = EmbeddedBackendConfig()


# A ref nothing can need: last written before the cutoff, and its group is gone from the
# engine, has no incident open or resolved since the cutoff, and no notification waiting in
# the outbox or as a dead letter (a replay would continue its thread). A ref written outside
# a delivery (no group) goes by its age alone. The outbox has no index by group: its group
# keys are read once per statement (NOT IN), not once per ref.
_DEAD_REF = """at < ?
AND NOT EXISTS (SELECT 1 FROM engine_state WHERE key = delivery_refs.group_key)
AND NOT EXISTS (SELECT 1 FROM incidents WHERE incidents.group_key = delivery_refs.group_key
                AND (status != 'resolved' OR resolved_at >= ?))
AND (group_key IS NULL OR group_key NOT IN (SELECT group_key FROM outbox))
AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE dead_letters.receiver = delivery_refs.receiver
                AND dead_letters.group_key = delivery_refs.group_key)"""


@dataclass(frozen=True)
class RetentionPolicy:
    interval: timedelta = _DEFAULTS.prune_interval
    resolved_alerts: timedelta = _DEFAULTS.resolved_alerts_max_age
    closed_incidents: timedelta = _DEFAULTS.closed_incidents_max_age
    delivery_records: timedelta = _DEFAULTS.delivery_records_max_age
    dead_letters: timedelta = _DEFAULTS.dead_letters_max_age

    @classmethod
    def of(cls, cfg: EmbeddedBackendConfig) -> RetentionPolicy:
        return cls(interval=cfg.prune_interval, resolved_alerts=cfg.resolved_alerts_max_age,
                   closed_incidents=cfg.closed_incidents_max_age,
                   delivery_records=cfg.delivery_records_max_age,
                   dead_letters=cfg.dead_letters_max_age)


@dataclass(frozen=True)
class PruneReport:
    deleted: dict[str, int] = field(default_factory=dict)  # rows per table
    pages_freed: int = 0


class Retention(Periodic):
    name = "retention"
    recoverable = (sqlite3.Error,)  # e.g. the disk is full: next time, then
    level = logging.ERROR

    def __init__(self, db: Database, outbox: SqliteOutbox, records: SqliteDeliveryStore,
                 policy: RetentionPolicy, clock: Callable[[], datetime],
                 metrics: StorageMetrics) -> None:
        super().__init__(log)
        self._db = db
        self._outbox = outbox
        self._records = records
        self.policy = policy
        self._clock = clock
        self._metrics = metrics

    async def start(self) -> None:
        await self.observe()
        await super().start()

    def interval(self) -> float:
        return self.policy.interval.total_seconds()

    async def run_pass(self) -> object:
        return await self.prune()

    def failed(self, exc: Exception) -> str:
        return f"pruning the database failed: {exc}"

    async def prune(self) -> PruneReport:
        """One pass: delete what is past its age, shrink the file, update the metrics."""
        now = self._clock().timestamp()
        p = self.policy
        deleted = {
            "log": await self._db.delete_in_chunks(
                "log", "offset <= (SELECT coalesce(max(offset), 0) FROM engine_position)"),
        }
        if p.resolved_alerts:
            deleted["alerts"] = await self._db.delete_in_chunks(
                "alerts", "status = 'resolved' AND event_time < ?",
                (now - p.resolved_alerts.total_seconds(),))
        cutoff = now - p.closed_incidents.total_seconds()
        if p.closed_incidents:
            deleted["incidents"] = await self._db.delete_in_chunks(
                "incidents", "status = 'resolved' AND resolved_at < ?", (cutoff,))
        if p.delivery_records:
            deleted["deliveries"] = await self._records.prune(
                p.delivery_records.total_seconds())
        if p.dead_letters:
            deleted["dead_letters"] = await self._outbox.prune(p.dead_letters.total_seconds())
        if p.closed_incidents:  # last: what keeps a ref alive was pruned above
            deleted["delivery_refs"] = await self._db.delete_in_chunks(
                "delivery_refs", _DEAD_REF, (cutoff, cutoff))
        freed = await self._db.incremental_vacuum()
        await self._db.checkpoint()
        for table, n in deleted.items():
            self._metrics.pruned.labels(table).inc(n)
        self._metrics.last_prune.set(now)
        await self.observe()
        if any(deleted.values()):
            log.info("pruned %s; %d pages freed",
                     ", ".join(f"{n} {t}" for t, n in deleted.items() if n), freed)
        return PruneReport(deleted=deleted, pages_freed=freed)

    async def observe(self) -> None:
        """Set the size and row-count gauges from the database as it is now."""
        def q(conn: sqlite3.Connection) -> dict[str, int]:
            return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                    for t in TABLES}

        for table, n in (await self._db.read(q)).items():
            self._metrics.rows.labels(table).set(n)
        self._metrics.size_bytes.set(self._db.size_bytes())
