"""The real Prometheus Alertmanager delivers to the router with a bearer token; the router stores
the alerts with Alertmanager's own fingerprints, and the resolved notification arrives too."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from router.api.app import build_app
from router.config import parse_config
from router.runtime import build_snapshot
from tests.conftest import write_config
from tests.procs import alertmanager

TOKEN = "am-e2e-token"

pytestmark = pytest.mark.e2e


def am_config(router_url: str) -> str:
    return f"""
route:
  receiver: router
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: router
    webhook_configs:
      - url: {router_url}/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
"""


def post_alerts(am_url: str, alerts: list[dict[str, object]]) -> None:
    req = urllib.request.Request(
        f"{am_url}/api/v2/alerts", data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def am_fingerprints(am_url: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{am_url}/api/v2/alerts", timeout=5) as resp:
        return {a["labels"]["instance"]: a["fingerprint"] for a in json.load(resp)}


async def wait_for(predicate):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + 40.0
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("condition not met before the deadline")
        await asyncio.sleep(0.3)


async def test_real_alertmanager_delivers_firing_and_resolved(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"sources": {"alertmanager": {
        "auth": {"type": "bearer", "tokens": [TOKEN]}}}})
    snapshot = build_snapshot(parse_config(path.read_text(), str(path), base_dir=str(tmp_path)))
    server = TestServer(build_app(snapshot, config_path=path), host="127.0.0.1")
    await server.start_server()
    router_url = str(server.make_url("")).rstrip("/")
    try:
        with alertmanager(tmp_path / "am", am_config(router_url)) as am_url:
            now = datetime.now(UTC)
            alerts = [
                {"labels": {"alertname": "DiskFull", "instance": f"db-{i}", "severity": "warning"},
                 "annotations": {"summary": f"disk on db-{i}", "value": "0.93"},
                 "startsAt": now.isoformat(), "generatorURL": "http://127.0.0.1:9090/graph"}
                for i in (1, 2)
            ]
            await asyncio.to_thread(post_alerts, am_url, alerts)

            async def stored(status: str) -> list[dict[str, object]] | None:
                async with aiohttp.ClientSession() as s, s.get(
                        f"{router_url}/api/v1/alerts?status={status}") as r:
                    data: list[dict[str, object]] = (await r.json())["data"]
                return data if len(data) == 2 else None

            firing = await wait_for(lambda: stored("firing"))
            expected = await asyncio.to_thread(am_fingerprints, am_url)
            got = {a["labels"]["instance"]: a["fingerprint"] for a in firing}  # type: ignore[index]
            assert got == expected
            assert all(a["value"] == 0.93 for a in firing)

            ended = datetime.now(UTC) - timedelta(seconds=1)
            for a in alerts:
                a["endsAt"] = ended.isoformat()
            await asyncio.to_thread(post_alerts, am_url, alerts)
            resolved = await wait_for(lambda: stored("resolved"))
            assert {a["fingerprint"] for a in resolved} == set(expected.values())
    finally:
        await server.close()
