"""Console page times with real volumes: 10,000 active alerts and 1,000 open incidents.

    .venv/bin/python bench/console.py [--alerts 10000] [--incidents 1000] [--silences 100]
                                      [--repeat 20] [--json]

Builds the router app on the embedded backend in a temporary directory, feeds it the alerts
through the Alertmanager webhook (severity label `error` = SEV2, one group per incident, so the
engine opens one incident per group), waits until the engine has decided everything, then
requests each console page `--repeat` times from an in-process client over loopback and prints
the median and worst time per page (the server's handler time plus a loopback round trip).
Open access (no tokens), so no login in the measurement. Then the same store reads on the
Kafka backend's in-memory views, filled in process with the same alerts and incidents (no
broker). Prints a table, or JSON with --json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

from router.api.app import build_app
from router.api.keys import BACKEND
from router.backends.factory import engine_context
from router.backends.filters import AlertQuery
from router.backends.kafka.backend import KafkaBackend
from router.config import Config, KafkaBackendConfig, parse_config
from router.incidents import Incident
from router.metrics import EngineMetrics
from router.model import Alert
from router.noise.matchers import parse_matchers
from router.runtime import build_snapshot
from router.ui.matching import inhibitor_of, label_test, narrowing

BATCH = 200
SILENCES = 100


def config_text(work: Path) -> str:
    (work / "rules").mkdir()
    return f"""
backend: {{type: embedded, path: {work / 'router.db'}}}
rules_dir: {work / 'rules'}
receivers: []
severities:
  SEV2: {{ack_sla: 30m, resolve_sla: 4h, group_wait: 0s, response: page_oncall}}
# What the alert page checks for "inhibited by" (nothing here fires as a source): the usual
# critical-over-lower rule, and one whose source side has only a regex and no `equal` (every
# firing alert's labels are tested).
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="error"']
    equal: [alertname, service]
  - source_matchers: ['alertname=~"NodeDown|ClusterDown"']
    target_matchers: ['severity="error"']
"""


def payload(start: int, count: int, incidents: int) -> dict[str, Any]:
    alerts = [{
        "status": "firing",
        "labels": {"alertname": f"Bench{i % incidents}", "severity": "error",
                   "service": f"svc{i % incidents % 37}", "team": f"team{i % incidents % 11}",
                   "instance": f"i{i}"},
        "annotations": {"summary": f"bench alert {i}"},
        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"{i:016x}",
    } for i in range(start, start + count)]
    return {"version": "4", "status": "firing", "receiver": "bench", "groupKey": "{}:{}",
            "alerts": alerts}


def silence(n: int) -> dict[str, Any]:
    """An active silence of one instance (some of which exist)."""
    now = datetime.now(UTC)
    return {"matchers": [{"name": "instance", "value": f"i{n * 7}", "isRegex": False}],
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=4)).isoformat(),
            "createdBy": "bench", "comment": f"bench silence {n}"}


Client = TestClient[web.Request, web.Application]


async def measure(client: Client, path: str, repeat: int) -> tuple[float, float, int]:
    times = []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        resp = await client.get(path)
        body = await resp.read()
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status == 200, (path, resp.status, body[:300])
        size = len(body)
    return statistics.median(times), max(times), size


async def measure_post(client: Client, path: str, form: dict[str, str],
                       repeat: int) -> tuple[float, float, int]:
    """`measure` for a form post (with the CSRF token of the session's pages)."""
    page = await (await client.get("/ui/silences/new")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the form"
    times = []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        resp = await client.post(path, data={**form, "csrf": found.group(1)})
        body = await resp.read()
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status == 200, (path, resp.status, body[:300])
        size = len(body)
    return statistics.median(times), max(times), size


async def run(alerts: int, incidents: int, silences: int, repeat: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        snapshot = build_snapshot(parse_config(config_text(work), base_dir=str(work)))
        app = build_app(snapshot)
        async with TestClient(TestServer(app)) as client:
            # Silences first: what the alert pages' "why it is quiet" checks. Made later, each
            # would re-decide every group with a firing alert (1-3 s apiece with 1,000 groups).
            for n in range(silences):
                resp = await client.post("/api/v2/silences", json=silence(n))
                assert resp.status == 200, await resp.text()
            t0 = time.perf_counter()
            for start in range(0, alerts, BATCH):
                resp = await client.post("/webhooks/alertmanager",
                                         json=payload(start, min(BATCH, alerts - start),
                                                      incidents))
                assert resp.status == 200, await resp.text()
            await app[BACKEND].engine.drained()
            load_s = time.perf_counter() - t0
            backend = app[BACKEND]
            found = await backend.urgent_incidents(limit=1)
            some_alert = (await backend.alert_page(limit=1)).items[0]
            team = AlertQuery(team="team3")
            regex = parse_matchers('instance=~"i1.*"')
            backend_reads = []
            for what, call in (("(backend) read every alert", backend.current_alerts(limit=alerts)),
                               ("(backend) read open incidents",
                                backend.incidents(status="open", limit=1000)),
                               ("(backend) one page of a team's alerts",
                                backend.alert_search(team, limit=100)),
                               ("(backend) a team's alerts by group",
                                backend.alert_counts("group_key", team)),
                               ("(backend) firing alerts whose labels match a regex",
                                backend.alerts_matching(narrowing(regex), label_test(regex),
                                                        limit=50)),
                               ("(backend) 100 most urgent incidents",
                                backend.urgent_incidents(limit=100)),
                               ("(backend) open incidents by severity",
                                backend.incident_counts(status="open"))):
                t1 = time.perf_counter()
                await call
                ms = round((time.perf_counter() - t1) * 1000, 1)
                backend_reads.append({"page": what, "path": "", "p50_ms": ms, "max_ms": ms,
                                      "bytes": None})
            incident = found[0].id
            older = (await backend.alert_page(limit=100)).next_cursor
            pages = [
                ("alerts (newest 100)", "/ui/alerts"),
                ("alerts live rows", "/ui/alerts/rows"),
                ("alerts, next 100 older", f"/ui/alerts?cursor={older}"),
                ("alerts filtered by team", "/ui/alerts?team=team3"),
                ("alerts by severity+service+status", "/ui/alerts?severity=SEV2&service=svc5"
                                                      "&status=firing"),
                ("alert detail (with 2 inhibit rules)",
                 f"/ui/alerts/{quote(some_alert.key, safe='')}"),
                ("incidents (100 most urgent + 50 resolved)", "/ui/incidents"),
                ("incidents live rows", "/ui/incidents/rows"),
                ("incidents, next 100 by urgency", "/ui/incidents?from=100"),
                ("incident page", f"/ui/incidents/{incident}"),
                ("incident live part", f"/ui/incidents/{incident}/live"),
                ("post-mortem draft", f"/ui/incidents/{incident}/postmortem"),
                ("on-call", "/ui/oncall"),
                ("dead letters", "/ui/dead-letters"),
                ("rules", "/ui/rules"),
                (f"silences ({silences})", "/ui/silences"),
                ("new silence from an alert", f"/ui/silences/new?alert={quote(some_alert.key)}"),
            ]
            opened = sum((await backend.incident_counts(status="open")).values())
            rows: list[dict[str, Any]] = [
                {"page": "(setup)", "path": "", "p50_ms": None, "max_ms": None, "bytes": None,
                 "note": f"{alerts} alerts, {opened} open incidents loaded in {load_s:.1f} s, "
                         f"{silences} silences"},
                *backend_reads]
            for name, path in pages:
                p50, worst, size = await measure(client, path, repeat)
                rows.append({"page": name, "path": path, "p50_ms": round(p50, 1),
                             "max_ms": round(worst, 1), "bytes": size})
            for name, matchers in (
                    ("silence preview, the alert's labels", "\n".join(
                        f'{k}="{v}"' for k, v in some_alert.labels.items())),
                    # Regex matchers only: every firing alert's labels are tested.
                    ("silence preview, regex only, unique values", 'instance=~"i1.*"'),
                    ("silence preview, regex only, 37 values", 'service=~"svc1.*"'),
                    ("silence preview, regex !~ matching all", 'alertname!~"Watchdog"')):
                form = {"matchers": matchers, "hours": "2", "comment": "bench"}
                p50, worst, size = await measure_post(client, "/ui/silences/preview", form,
                                                      repeat)
                rows.append({"page": name, "path": "/ui/silences/preview",
                             "p50_ms": round(p50, 1), "max_ms": round(worst, 1), "bytes": size})
            rows += await kafka_view_reads(
                snapshot.config, await backend.current_alerts(limit=alerts),
                await backend.incidents(limit=incidents * 2), repeat)
            return rows


async def kafka_view_reads(config: Config, alerts: list[Alert], incidents: list[Incident],
                           repeat: int) -> list[dict[str, Any]]:
    """The console's store reads on the Kafka backend's in-memory views (every replica holds
    them whole), filled in process with what the embedded run holds: no broker, so only the
    reads' own cost (the pages around them are the same code as above)."""
    kafka = KafkaBackend(KafkaBackendConfig(bootstrap_servers=["127.0.0.1:9"]),
                         engine_context(config), EngineMetrics(CollectorRegistry()))
    groups: dict[str, list[Alert]] = {}
    for a in alerts:
        groups.setdefault(a.group_key or a.name, []).append(a)
    view = TypeAdapter(list[Alert])
    for n, (key, members) in enumerate(groups.items()):  # as the engine writes the view
        kafka._view.applied(key, view.dump_json(members), 0, n)
    for n, i in enumerate(incidents):
        kafka.engine.on_incident(i.id, i.model_dump_json().encode(), 0, n)
    await kafka.alert_counts("status", AlertQuery())  # the first read decodes the views
    await kafka.incident_counts()
    some = alerts[0]
    regex = parse_matchers('instance=~"i1.*"')
    reads: dict[str, Callable[[], Awaitable[object]]] = {
        "one page of a team's alerts": lambda: kafka.alert_search(AlertQuery(team="team3")),
        "a team's alerts by group": lambda: kafka.alert_counts(
            "group_key", AlertQuery(team="team3")),
        "firing alerts whose labels match a regex": lambda: kafka.alerts_matching(
            narrowing(regex), label_test(regex), limit=50),
        "the inhibitor of an alert (2 rules)": lambda: inhibitor_of(
            kafka, some, config.inhibit_rules),
        "one alert by key": lambda: kafka.alert(some.key),
        "100 most urgent incidents": lambda: kafka.urgent_incidents(limit=100),
        "open incidents by severity": lambda: kafka.incident_counts(status="open"),
    }
    rows = []
    for name, read in reads.items():
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            await read()
            times.append((time.perf_counter() - t0) * 1000)
        rows.append({"page": f"(kafka views) {name}", "path": "",
                     "p50_ms": round(statistics.median(times), 1),
                     "max_ms": round(max(times), 1), "bytes": None})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--incidents", type=int, default=1_000)
    parser.add_argument("--silences", type=int, default=SILENCES)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = asyncio.run(run(args.alerts, args.incidents, args.silences, args.repeat))
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'page':44} {'p50 ms':>8} {'max ms':>8} {'bytes':>9}")
    for r in rows:
        if r["p50_ms"] is None:
            print(f"{r['page']:44} {r['note']}")
        else:
            size = f"{r['bytes']:9,}" if r["bytes"] is not None else ""
            print(f"{r['page']:44} {r['p50_ms']:8.1f} {r['max_ms']:8.1f} {size:>9}")


if __name__ == "__main__":
    main()
