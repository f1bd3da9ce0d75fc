"""Soak of the embedded database: does the file level off under a constant alert stream?

    .venv/bin/python bench/soak_db.py [--alerts 1000000] [--rate 190] [--max-age 2m]
        [--prune-interval 1m] [--report-at 100000,1000000] [--fingerprints N] [--no-prune]
        [--keep DIR]

Drives `EmbeddedBackend` directly (no HTTP) on a simulated clock: `--rate` alerts per
simulated second, as the 25-minute soak of issue 14 sent them (~190/s). Each alert belongs to
one of 20,000 groups (alert name x service); it fires, is sent again 30 s later (as
Alertmanager re-sends) and resolves 90 s after firing. Each is a new fingerprint (pods come
and go), or with `--fingerprints N` one of N that fire again and again. One group in 50 is
SEV2 and opens an incident. After each simulated second the engine decides, a stand-in for
the Dispatcher takes the outbox (99% delivered and recorded, 1% dead-lettered), and every
`--prune-interval` of simulated time retention runs with every age set to `--max-age` (scaled
down from the 30-day defaults, through EmbeddedBackendConfig, so the steady state comes
within the first 100k alerts).

Prints one Markdown table row per `--report-at` count: the database file and its WAL in
bytes (right after a prune pass and the largest the WAL was so far), bytes per alert received
so far, the rows per table and the three largest tables
(with their indexes, from SQLite's dbstat). Alerts are counted as the intake counts them:
every received alert (fire, re-send and resolve each count one).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from router.backends.embedded.backend import EmbeddedBackend
from router.backends.embedded.metrics import TABLES
from router.backends.embedded.retention import RetentionPolicy
from router.config import EmbeddedBackendConfig, IncidentsConfig
from router.durations import parse_duration
from router.engine.state import EngineContext
from router.metrics import EngineMetrics
from router.model import Alert, AlertEvent, Severity, Status

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GROUPS = 20_000  # Alertmanager groups: a few alerts each at a time
RESEND_AFTER = 30  # seconds after firing
RESOLVE_AFTER = 90
DEAD_LETTER_EVERY = 100  # one notification in this many cannot be delivered


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def alert(n: int, status: Status, fired: datetime, at: datetime) -> AlertEvent:
    group = n % GROUPS
    name, service = f"Alert{group % 100}", f"svc{group // 100}"
    return AlertEvent(alert=Alert.model_construct(
        source="alertmanager", fingerprint=f"{n:012x}", status=status, name=name,
        labels={"alertname": name, "service": service, "instance": f"10.0.{n % 250}.{n % 7}",
                "pod": f"{service}-{n:08x}"},
        annotations={"summary": f"{name} on {service}",
                     "description": "error rate above 5% for 5 minutes"},
        starts_at=fired, ends_at=at if status is Status.RESOLVED else None, received_at=at,
        severity=Severity.SEV2 if group % 50 == 0 else Severity.SEV4, service=service,
        group_key=f"{name}|{service}",
    ))


def files(path: Path) -> tuple[int, int]:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


async def rows(backend: EmbeddedBackend) -> dict[str, int]:
    def q(conn: sqlite3.Connection) -> dict[str, int]:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in TABLES}
    return await backend.db.read(q)


async def largest(backend: EmbeddedBackend) -> str:
    """The three tables (with their indexes) that take the most pages, in MB."""
    def q(conn: sqlite3.Connection) -> list[tuple[str, int]]:
        return conn.execute(
            "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
            "LEFT JOIN sqlite_schema m ON m.name = s.name GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
        ).fetchall()
    try:
        top = await backend.db.read(q)
    except sqlite3.OperationalError:  # SQLite built without the dbstat table
        return "-"
    return ", ".join(f"{name} {size / 1e6:.1f}" for name, size in top)


async def deliver(backend: EmbeddedBackend, delivered: int) -> int:
    """Take the whole outbox as the Dispatcher's concurrent lanes would (their writes share
    group commits); returns the running count."""
    outbox = backend.outbox
    while items := await outbox.pending(1000):
        done = []
        for item in items:
            delivered += 1
            if delivered % DEAD_LETTER_EVERY == 0:
                done.append(outbox.dead_letter(item, "http_500"))
            else:
                done.append(outbox.mark_delivered_recorded(item.id, item.notification.id,
                                                           item.receiver))
        await asyncio.gather(*done)
    return delivered


async def soak(args: argparse.Namespace, path: Path) -> list[str]:
    age = parse_duration(args.max_age)
    cfg = EmbeddedBackendConfig(
        path=str(path), prune_interval=parse_duration(args.prune_interval),
        resolved_alerts_max_age=age, closed_incidents_max_age=age,
        delivery_records_max_age=age, dead_letters_max_age=age)
    policy = RetentionPolicy.of(cfg)
    clock = Clock()
    context = EngineContext(default_receivers=("chat",), incidents=IncidentsConfig())
    backend = EmbeddedBackend(path, context, EngineMetrics(CollectorRegistry()),
                              synchronous="NORMAL", retention=policy, clock=clock)
    # Retention runs on simulated time below, not on the backend's wall-clock timer.
    backend.retention.sleep = lambda _: asyncio.Event().wait()
    await backend.start()
    report_at = sorted(int(x) for x in args.report_at.split(","))
    lines: list[str] = []
    # (second due, event), each in due order: the re-sends and the resolves to come.
    resends: deque[tuple[int, AlertEvent]] = deque()
    resolves: deque[tuple[int, AlertEvent]] = deque()
    sent = fired = delivered = wal_peak = 0
    second = 0
    next_prune = policy.interval.total_seconds()
    started = time.perf_counter()
    try:
        while sent < args.alerts:
            now = clock.now = T0 + timedelta(seconds=second)
            batch: list[AlertEvent] = []
            for due in (resolves, resends):
                while due and due[0][0] <= second and len(batch) < args.rate:
                    batch.append(due.popleft()[1])
            while len(batch) < args.rate:
                n = fired % args.fingerprints if args.fingerprints else fired
                batch.append(alert(n, Status.FIRING, now, now))
                resends.append((second + RESEND_AFTER, alert(
                    n, Status.FIRING, now, now + timedelta(seconds=RESEND_AFTER))))
                resolves.append((second + RESOLVE_AFTER, alert(
                    n, Status.RESOLVED, now, now + timedelta(seconds=RESOLVE_AFTER))))
                fired += 1
            batch = batch[:args.alerts - sent]
            await backend.log.append(batch)
            await backend.engine.drained()
            delivered = await deliver(backend, delivered)
            wal_peak = max(wal_peak, files(path)[1])
            sent += len(batch)
            second += 1
            if second >= next_prune and not args.no_prune:
                await backend.retention.prune()
                next_prune += policy.interval.total_seconds()
            while report_at and sent >= report_at[0]:
                report_at.pop(0)
                if not args.no_prune:
                    await backend.retention.prune()
                await backend.db.checkpoint()
                db, wal = files(path)
                counts = await rows(backend)
                lines.append(
                    f"| {sent:,} | {second:,} s | {db:,} | {wal:,} | {wal_peak:,} | "
                    f"{db / sent:.1f} | "
                    + " | ".join(f"{counts[t]:,}" for t in
                                 ("log", "alerts", "incidents", "engine_state", "outbox",
                                  "deliveries", "dead_letters"))
                    + f" | {await largest(backend)} | {time.perf_counter() - started:.0f} s |")
                print(lines[-1], flush=True)
    finally:
        await backend.stop()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=190, help="alerts per simulated second")
    parser.add_argument("--max-age", default="2m", help="every retention age (simulated)")
    parser.add_argument("--prune-interval", default="1m")
    parser.add_argument("--report-at", default="100000,1000000")
    parser.add_argument("--fingerprints", type=int, default=0,
                        help="alerts recur from a pool of this many fingerprints (the same "
                             "instances firing again); 0: every alert a new one (pod churn)")
    parser.add_argument("--no-prune", action="store_true",
                        help="no retention at all: the growth as before it existed")
    parser.add_argument("--keep", type=Path, help="keep the database in this directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-db-"))
    path = (args.keep or work) / "router.db"
    print(f"rate {args.rate}/s simulated, "
          + (f"{args.fingerprints:,} recurring fingerprints, " if args.fingerprints
             else "a new fingerprint per alert, ")
          + ("no retention" if args.no_prune else
             f"retention ages {args.max_age}, prune every {args.prune_interval}"))
    print("| alerts | simulated | db bytes | wal bytes | wal peak | db bytes/alert | log | "
          "alerts | incidents | engine_state | outbox | deliveries | dead_letters | "
          "largest (MB) | wall |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    try:
        asyncio.run(soak(args, path))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
