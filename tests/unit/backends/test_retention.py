"""Embedded retention on an injected clock: what is past its age goes, what is still needed
stays, and the file gives the freed pages back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from router.backends.embedded.backend import EmbeddedBackend
from router.backends.embedded.outbox import insert_notifications
from router.backends.embedded.retention import RetentionPolicy
from router.config import EmbeddedBackendConfig, IncidentsConfig, parse_config
from router.engine.state import EngineContext
from router.metrics import EngineMetrics
from router.model import (
    Alert,
    AlertEvent,
    CommandEvent,
    Notification,
    NotificationKind,
    Severity,
    Status,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CTX = EngineContext(default_receivers=("log",), incidents=IncidentsConfig())
POLICY = RetentionPolicy(resolved_alerts=30 * DAY, closed_incidents=30 * DAY,
                         delivery_records=7 * DAY, dead_letters=14 * DAY)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def alert(fp: str, status: Status, at: datetime, labels: dict[str, str] | None = None
          ) -> AlertEvent:
    return AlertEvent(alert=Alert(
        source="generic", fingerprint=fp, status=status, name=f"Alert {fp}",
        starts_at=T0, ends_at=at if status is Status.RESOLVED else None, received_at=at,
        severity=Severity.SEV4, group_key=f"g-{fp}", labels=labels or {},
    ))


def command(name: str, at: datetime, group_key: str, incident_id: str | None = None,
            **args: Any) -> CommandEvent:
    return CommandEvent(command=name, incident_id=incident_id, group_key=group_key,
                        actor="api", at=at, args=args)


def notification(n: int) -> Notification:
    return Notification(id=f"n{n}", receiver="log", kind=NotificationKind.TRIGGER,
                        group_key=f"g{n}", dedup_key=f"d{n}", severity=Severity.SEV3,
                        title=f"Alert {n}", created_at=T0)


class Router:
    def __init__(self, path: Path, clock: Clock, policy: RetentionPolicy = POLICY) -> None:
        self.registry = CollectorRegistry()
        self.backend = EmbeddedBackend(path, CTX, EngineMetrics(self.registry),
                                       synchronous="NORMAL", retention=policy,
                                       registry=self.registry, clock=clock)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels)

    async def rows(self, table: str) -> int:
        row = await self.backend.db.read(
            lambda c: c.execute(f"SELECT count(*) FROM {table}").fetchone())
        return int(row[0])

    async def column(self, sql: str) -> list[Any]:
        return [r[0] for r in await self.backend.db.read(lambda c: c.execute(sql).fetchall())]

    async def pragma(self, name: str) -> int:
        row = await self.backend.db.read(lambda c: c.execute(f"PRAGMA {name}").fetchone())
        return int(row[0])


@pytest.fixture
async def router(tmp_path: Path) -> AsyncIterator[tuple[Router, Clock]]:
    clock = Clock()
    r = Router(tmp_path / "router.db", clock)
    await r.backend.start()
    yield r, clock
    await r.backend.stop()


async def test_consumed_log_entries_go_and_unconsumed_ones_stay(
        router: tuple[Router, Clock]) -> None:
    r, _ = router
    b = r.backend
    await b.log.append([alert(f"a{i}", Status.FIRING, T0) for i in range(5)])
    await b.engine.drained()
    await b.engine.stop()  # what is appended now is not consumed
    await b.log.append([alert("late", Status.FIRING, T0)])

    report = await b.retention.prune()

    assert report.deleted["log"] == 5
    assert await r.column("SELECT offset FROM log") == [6]
    assert await b.log_size() == 6  # offsets are never reused
    # A restarted engine still finds the unconsumed entry and decides it.
    await b.engine.start()
    await b.engine.drained()
    assert "g-late" in set(b.engine.engine.keys())
    assert (await b.retention.prune()).deleted["log"] == 1


async def test_resolved_alerts_go_after_their_age_and_firing_ones_stay(
        router: tuple[Router, Clock]) -> None:
    r, clock = router
    b = r.backend
    await b.log.append([
        alert("old", Status.RESOLVED, T0 + DAY / 2),
        alert("recent", Status.RESOLVED, T0 + 20 * DAY),
        alert("firing", Status.FIRING, T0),
    ])
    clock.now = T0 + 31 * DAY

    assert (await b.retention.prune()).deleted["alerts"] == 1

    assert sorted(a.fingerprint for a in await b.current_alerts()) == ["firing", "recent"]
    clock.now = T0 + 51 * DAY
    await b.retention.prune()
    assert [a.fingerprint for a in await b.current_alerts()] == ["firing"]


async def test_closed_incidents_go_after_their_age_and_open_ones_stay(
        router: tuple[Router, Clock]) -> None:
    r, clock = router
    b = r.backend
    for name in ("closed", "open", "closed-late"):
        await b.log.append([command("declare", T0, f"manual:{name}", title=name,
                                    severity="SEV3")])
        await b.engine.drained()
    ids = {i.group_key: i.id for i in await b.incidents()}
    await b.log.append([
        command("resolve", T0 + DAY, "manual:closed", ids["manual:closed"]),
        command("resolve", T0 + 10 * DAY, "manual:closed-late", ids["manual:closed-late"]),
    ])
    await b.engine.drained()
    clock.now = T0 + 32 * DAY  # 31 days after the first resolve, 22 after the second

    assert (await b.retention.prune()).deleted["incidents"] == 1

    left = {i.group_key for i in await b.incidents()}
    assert left == {"manual:open", "manual:closed-late"}
    assert await b.incident(ids["manual:closed"]) is None
    clock.now = T0 + 365 * DAY
    await b.retention.prune()
    assert [i.group_key for i in await b.incidents()] == ["manual:open"]


async def test_delivery_records_and_dead_letters_have_their_own_ages(
        router: tuple[Router, Clock]) -> None:
    r, clock = router
    b = r.backend
    await b.db.transaction(lambda c: insert_notifications(c, [notification(n) for n in range(4)]))
    n0, n1, n2, n3 = await b.outbox.pending(10)
    await b.outbox.mark_delivered_recorded(n0.id, n0.notification.id, "log")
    await b.outbox.dead_letter(n1, "http_500")
    await b.records.record(n3.notification.id, "log")  # a record whose item is still queued
    clock.now = T0 + 8 * DAY  # past the records' age, not the dead letters'

    report = await b.retention.prune()

    assert report.deleted["deliveries"] == 1
    assert report.deleted["dead_letters"] == 0
    assert not await b.records.already_delivered(n0.notification.id, "log")
    assert await b.records.already_delivered(n3.notification.id, "log")  # still needed
    assert [d.id for d in await b.outbox.list()] == [n1.id]
    clock.now = T0 + 15 * DAY
    assert (await b.retention.prune()).deleted["dead_letters"] == 1
    assert await b.outbox.list() == []
    assert not await b.outbox.holds("log", n1.notification.group_key)
    # Undelivered notifications are never pruned, however old.
    clock.now = T0 + 1000 * DAY
    await b.retention.prune()
    assert [i.id for i in await b.outbox.pending(10)] == [n2.id, n3.id]


async def test_an_age_of_zero_keeps_that_kind_forever(tmp_path: Path) -> None:
    clock = Clock()
    r = Router(tmp_path / "router.db", clock,
               RetentionPolicy(resolved_alerts=timedelta(0), dead_letters=timedelta(0)))
    await r.backend.start()
    try:
        await r.backend.log.append([alert("old", Status.RESOLVED, T0)])
        clock.now = T0 + 1000 * DAY
        report = await r.backend.retention.prune()
        assert "alerts" not in report.deleted and "dead_letters" not in report.deleted
        assert await r.rows("alerts") == 1
    finally:
        await r.backend.stop()


async def test_the_file_shrinks_after_pruning(router: tuple[Router, Clock]) -> None:
    r, clock = router
    b = r.backend
    assert await r.pragma("auto_vacuum") == 2  # INCREMENTAL, from the first table on
    padding = {"detail": "x" * 2000}
    for chunk in range(10):
        await b.log.append([alert(f"a{chunk}-{i}", Status.RESOLVED, T0, padding)
                            for i in range(100)])
    await b.engine.drained()
    await b.db.checkpoint()
    pages_before = await r.pragma("page_count")
    file_before = b.db.path.stat().st_size
    clock.now = T0 + 31 * DAY

    report = await b.retention.prune()

    assert report.deleted["alerts"] == 1000 and report.deleted["log"] == 1000
    assert report.pages_freed > 0
    assert await r.pragma("freelist_count") == 0
    pages_after = await r.pragma("page_count")
    assert pages_after < pages_before / 4
    assert b.db.path.stat().st_size < file_before / 4  # truncated by the checkpoint
    assert b.db.path.with_name("router.db-wal").stat().st_size == 0  # and the WAL emptied
    assert r.metric("incident_router_db_size_bytes") == b.db.size_bytes()


async def test_metrics_count_rows_per_table_and_what_was_pruned(
        router: tuple[Router, Clock]) -> None:
    r, clock = router
    b = r.backend
    assert r.metric("incident_router_db_rows", {"table": "alerts"}) == 0
    await b.log.append([alert("a", Status.RESOLVED, T0), alert("b", Status.FIRING, T0)])
    await b.engine.drained()
    await b.retention.observe()
    assert r.metric("incident_router_db_rows", {"table": "alerts"}) == 2
    assert r.metric("incident_router_db_rows", {"table": "log"}) == 2
    size = r.metric("incident_router_db_size_bytes")
    assert size is not None and size > 0

    clock.now = T0 + 31 * DAY
    await b.retention.prune()

    assert r.metric("incident_router_db_rows", {"table": "alerts"}) == 1
    assert r.metric("incident_router_db_rows", {"table": "log"}) == 0
    assert r.metric("incident_router_db_pruned_rows_total", {"table": "alerts"}) == 1
    assert r.metric("incident_router_db_pruned_rows_total", {"table": "log"}) == 2
    assert r.metric("incident_router_db_last_prune_timestamp_seconds") == clock.now.timestamp()


class SteppedSleep:
    """`Retention.sleep` that returns only when the test says so."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[float] = asyncio.Queue()
        self.go = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.calls.put_nowait(seconds)
        await self.go.wait()
        self.go.clear()


async def test_the_pruning_task_runs_every_interval(tmp_path: Path) -> None:
    clock = Clock()
    r = Router(tmp_path / "router.db", clock, RetentionPolicy(interval=timedelta(minutes=2)))
    sleep = r.backend.retention.sleep = SteppedSleep()
    await r.backend.start()
    try:
        assert await sleep.calls.get() == 120  # waits one interval first
        await r.backend.log.append([alert("a", Status.RESOLVED, T0)])
        clock.now = T0 + 31 * DAY
        sleep.go.set()
        assert await sleep.calls.get() == 120  # the pass is done: sleeping again
        assert await r.rows("alerts") == 0
        assert r.metric("incident_router_db_pruned_rows_total", {"table": "alerts"}) == 1
    finally:
        await r.backend.stop()


def test_retention_is_configured_on_the_embedded_backend(tmp_path: Path) -> None:
    config = parse_config("backend:\n  type: embedded\n  prune_interval: 30s\n"
                          "  resolved_alerts_max_age: 2d\n  dead_letters_max_age: 0\n")
    assert isinstance(config.backend, EmbeddedBackendConfig)
    policy = RetentionPolicy.of(config.backend)
    assert policy == RetentionPolicy(interval=timedelta(seconds=30),
                                     resolved_alerts=timedelta(days=2),
                                     closed_incidents=timedelta(days=30),
                                     delivery_records=timedelta(days=30),
                                     dead_letters=timedelta(0))


def _old_database(path: Path, rows: int, padding: int) -> None:
    """A database as the router made it before retention: auto_vacuum off, no resolved_at."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE incidents (id TEXT PRIMARY KEY, group_key TEXT NOT NULL, "
                 "status TEXT NOT NULL, severity TEXT NOT NULL, opened_at REAL NOT NULL, "
                 "body BLOB NOT NULL)")
    conn.execute("CREATE TABLE junk (x BLOB)")
    conn.executemany("INSERT INTO junk VALUES (?)", [(b"x" * padding,)] * rows)
    body = (b'{"id":"INC-20260302-1","title":"t","severity":"SEV3","status":"resolved",'
            b'"group_key":"manual:a","opened_at":"2026-03-02T09:00:00Z",'
            b'"resolved_at":"2026-03-03T09:00:00Z"}')
    conn.execute("INSERT INTO incidents VALUES ('INC-20260302-1', 'manual:a', 'resolved', "
                 "'SEV3', ?, ?)", (T0.timestamp(), body))
    conn.commit()
    conn.close()


async def test_an_older_database_is_migrated_and_switched_to_incremental_vacuum(
        tmp_path: Path) -> None:
    path = tmp_path / "router.db"
    _old_database(path, rows=10, padding=100)
    clock = Clock()
    r = Router(path, clock)
    await r.backend.start()
    try:
        assert await r.pragma("auto_vacuum") == 2
        assert await r.column("SELECT resolved_at FROM incidents") == [(T0 + DAY).timestamp()]
        clock.now = T0 + 32 * DAY
        assert (await r.backend.retention.prune()).deleted["incidents"] == 1
    finally:
        await r.backend.stop()


async def test_a_big_older_database_is_left_as_it_is_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from router.backends.embedded import sqlite

    monkeypatch.setattr(sqlite, "VACUUM_AT_OPEN_MAX_BYTES", 64 * 1024)
    path = tmp_path / "router.db"
    _old_database(path, rows=100, padding=2000)
    r = Router(path, Clock())
    await r.backend.start()
    try:
        assert await r.pragma("auto_vacuum") == 0
        assert "PRAGMA auto_vacuum=INCREMENTAL; VACUUM;" in caplog.text
    finally:
        await r.backend.stop()
