"""Delivery cost per notification, in process: outbox -> Dispatcher -> receiver, on one core.

    .venv/bin/python bench/delivery.py [--count 20000] [--repeat 1] [--receivers webhook,log]
                                       [--concurrency 64] [--loop auto|uvloop|asyncio]

Each row runs in its own child process pinned to core 0 with a fresh embedded database
(router.backends.embedded.sqlite.Database with router.backends.embedded.outbox.SCHEMA, relaxed
like the end-to-end benchmark): `--count` SEV1 trigger notifications, one per group (so one
lane each), are enqueued with `insert_notifications`, then a Dispatcher with one receiver of
concurrency `--concurrency` delivers them all. `webhook` posts to bench/sink.py (a subprocess
pinned to core 1); `log` writes JSON lines to /dev/null, which leaves the outbox and record
bookkeeping without HTTP. Printed per row: notifications/s, CPU seconds of the router process
(the database thread included) per 1,000 notifications, and peak RSS; with `--repeat` the
median. The event loop is the server's (`router.cli.new_event_loop`: uvloop when installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUTER_CPU = 0
SINK_CPU = 1
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
NAMES = ("KubePodCrashLooping", "HighRequestLatency", "NodeFilesystemAlmostFull",
         "PostgresReplicationLag", "TargetDown", "KafkaConsumerLag")


def notifications(first: int, stop: int, receiver: str) -> list[Any]:
    from router.model import Alert, Notification, NotificationKind, Severity, Status, stable_id

    out = []
    for i in range(first, stop):
        name = NAMES[i % len(NAMES)]
        pod = f"{name.lower()[:12]}-{i:08d}-000"
        group = f"{name}|svc-{i:08d}"
        alert = Alert(
            source="alertmanager", fingerprint=f"{i:016x}", status=Status.FIRING, name=name,
            labels={"alertname": name, "severity": "critical", "env": "prod",
                    "namespace": "payments", "service": f"svc-{i:08d}", "pod": pod,
                    "instance": f"10.42.{i % 250}.17:8080", "job": "kubernetes-pods",
                    "team": "payments", "bench_seq": f"{i:08d}-0"},
            annotations={"summary": f"{name} on {pod}",
                         "runbook_url": f"https://runbooks.example.com/{name.lower()}",
                         "value": "0.23"},
            starts_at=T0, received_at=T0, generator_url="http://prometheus:9090/graph?g0.expr=up",
            severity=Severity.SEV1, team="payments", service=f"svc-{i:08d}",
            runbook_url=f"https://runbooks.example.com/{name.lower()}", receivers=(receiver,),
            group_key=group, rule="critical-label",
        )
        out.append(Notification(
            id=stable_id(group, "1.0", "trigger", "0", receiver), receiver=receiver,
            kind=NotificationKind.TRIGGER, group_key=group, dedup_key=stable_id(group, "1"),
            severity=Severity.SEV1, title=f"{name} on {pod}", alerts=(alert,), created_at=T0,
            details={"epoch": 1, "sequence": 0, "flapping": False, "firing": 1, "resolved": 0,
                     "reasons": ["new"], "duplicates": 0, "stale": 0},
        ))
    return out


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_row(kind: str, count: int, concurrency: int, sink_port: int | None) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry
    from pydantic import TypeAdapter

    from router.backends.embedded.outbox import (
        SCHEMA,
        SqliteDeliveryStore,
        SqliteOutbox,
        insert_notifications,
    )
    from router.backends.embedded.sqlite import Database
    from router.delivery.dispatcher import Dispatcher
    from router.delivery.receivers import ReceiverConfig, build_receivers
    from router.delivery.session import new_session
    from router.delivery.sink import SinkContext

    receiver: dict[str, Any] = {"type": kind, "name": kind, "concurrency": concurrency}
    if kind == "webhook":
        receiver["url"] = f"http://127.0.0.1:{sink_port}/hook"
    config = TypeAdapter(ReceiverConfig).validate_python(receiver)  # type: ignore[arg-type]

    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        db = Database(Path(tmp) / "router.db", SCHEMA, synchronous="NORMAL")
        await db.open()
        for j in range(0, count, 1000):  # in chunks, so that they do not make the peak RSS
            chunk = notifications(j, min(count, j + 1000), kind)
            await db.transaction(lambda c, chunk=chunk: insert_notifications(c, chunk))
        outbox, store = SqliteOutbox(db), SqliteDeliveryStore(db)
        registry = CollectorRegistry()
        client = new_session()  # as router.api.app
        receivers = build_receivers([config], SinkContext(client, store))
        dispatcher = Dispatcher(outbox, outbox, receivers, store=store, registry=registry)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        await dispatcher.start()
        # The sent counter is the only signal there is; a 20 ms poll costs next to nothing.
        while (registry.get_sample_value("incident_router_notifications_sent_total",  # noqa: ASYNC110
                                         {"receiver": kind}) or 0) < count:
            await asyncio.sleep(0.02)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        await dispatcher.stop()
        await client.close()
        left = await outbox.count_pending()
        dead = len(await outbox.list())
        await db.close()
    if left or dead:
        raise SystemExit(f"{kind}: {left} still pending, {dead} dead-lettered")
    return {"kind": kind, "rate": count / elapsed, "cpu_per_1k": cpu / count * 1000,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {ROUTER_CPU})
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the log receiver's stdout
    real = sys.stdout
    from router.cli import new_event_loop

    with contextlib.redirect_stdout(devnull), asyncio.Runner(
        loop_factory=lambda: new_event_loop(args.loop)
    ) as runner:
        row = runner.run(run_row(args.row, args.count, args.concurrency, args.sink_port))
    real.write(json.dumps(row) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(method: str, url: str) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
        body: bytes = r.read()
        return body


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), "--port",
                             str(port), "--cpu", str(SINK_CPU)])
    deadline = time.monotonic() + 30
    while True:
        try:
            http("GET", f"http://127.0.0.1:{port}/readyz")
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("sink did not start") from None
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; prints the median")
    parser.add_argument("--receivers", default="webhook,log")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--loop", default="auto", choices=("auto", "uvloop", "asyncio"),
                        help="event loop, as the server's `event_loop` (auto: uvloop if installed)")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row in this process
    parser.add_argument("--sink-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        child(args)
        return
    kinds = [k for k in args.receivers.split(",") if k]
    sink: subprocess.Popen[bytes] | None = None
    port = None
    if "webhook" in kinds:
        sink, port = start_sink()
    try:
        print(f"| receiver | notifications | notifications/s | CPU s / 1,000 | peak RSS MB |"
              f"  ({args.count:,} notifications, concurrency {args.concurrency}, "
              f"median of {args.repeat})")
        print("|----------|---------------|-----------------|---------------|-------------|")
        for kind in kinds:
            rows = []
            for _ in range(args.repeat):
                cmd = [sys.executable, __file__, "--row", kind, "--count", str(args.count),
                       "--concurrency", str(args.concurrency), "--loop", args.loop]
                if port is not None:
                    cmd += ["--sink-port", str(port)]
                out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                if kind == "webhook":
                    stats = json.loads(http("GET", f"http://127.0.0.1:{port}/stats"))
                    if stats["notifications"] < args.count:
                        raise SystemExit(f"sink saw {stats['notifications']} of {args.count}")
                    http("POST", f"http://127.0.0.1:{port}/reset")

            def med(key: str, rows: list[dict[str, Any]] = rows) -> float:
                return statistics.median(r[key] for r in rows)

            print(f"| {kind:<8} | {args.count:>13,} | {med('rate'):>15,.0f} | "
                  f"{med('cpu_per_1k'):>13.3f} | {med('rss_mb'):>11.0f} |", flush=True)
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()


if __name__ == "__main__":
    main()
