"""Issue 15 from outside: the real `amtool` silences alerts on the router, the real
Alertmanager delivers a matching alert to it, the receiver hears nothing; `amtool silence
expire` and the still-firing alert is delivered once. Inhibition with Alertmanager's payloads:
a firing ClusterDown keeps the HighErrorRate of the same cluster quiet."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from router.api.app import build_app
from router.config import parse_config
from router.runtime import build_snapshot
from tests.conftest import write_config
from tests.e2e.test_alertmanager_e2e import am_config, post_alerts
from tests.fakes.webhook import PATH, FakeWebhookConsumer
from tests.procs import alertmanager, binary

pytestmark = pytest.mark.e2e
SECRET = "whsec_" + "c2lsZW5jZS1lMmUtc2VjcmV0LWtleS0wMTIzNDU2Nzg5"
TOKEN = "am-e2e-token"


async def amtool(url: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        binary("amtool"), f"--alertmanager.url={url}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def hook(aiohttp_server: Any) -> AsyncIterator[tuple[FakeWebhookConsumer, str]]:
    consumer = FakeWebhookConsumer(SECRET)
    server = await aiohttp_server(consumer.app())
    yield consumer, str(server.make_url(PATH))


async def start_router(tmp_path: Path, hook_url: str,
                       extra: dict[str, Any] | None = None) -> tuple[TestServer, str]:
    fast = {"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"}
    cfg: dict[str, Any] = {
        "sources": {"alertmanager": {"auth": {"type": "bearer", "tokens": [TOKEN]}}},
        "receivers": [{"name": "log", "type": "log"},
                      {"name": "hook", "type": "webhook", "url": hook_url,
                       "secrets": [SECRET]}],
        "default_receivers": ["hook"],
        "severities": {s: {**fast, "receivers": ["hook"]} for s in ("SEV3", "SEV4")},
        **(extra or {}),
    }
    path = write_config(tmp_path, cfg)
    snapshot = build_snapshot(parse_config(path.read_text(), str(path), base_dir=str(tmp_path)))
    server = TestServer(build_app(snapshot, config_path=path), host="127.0.0.1")
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")


async def alerts_of(router_url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{router_url}/api/v1/alerts") as r:
        data: list[dict[str, Any]] = (await r.json())["data"]
    return data


async def wait_for(probe: Any, what: str, within: float = 40.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{what}: not before the deadline")
        await asyncio.sleep(0.3)


def disk_alert() -> dict[str, Any]:
    return {"labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "warning"},
            "annotations": {"summary": "disk on db-1"},
            "startsAt": datetime.now(UTC).isoformat()}


async def test_amtool_silence_keeps_an_alert_quiet_until_it_is_expired(
        tmp_path: Path, hook: tuple[FakeWebhookConsumer, str]) -> None:
    consumer, hook_url = hook
    server, router_url = await start_router(tmp_path, hook_url)
    try:
        code, out, err = await amtool(router_url, "silence", "add", "alertname=DiskFull",
                                      "--duration=1h", "--author=alice", "--comment=disk swap")
        assert code == 0, err
        sid = out.strip()
        code, out, err = await amtool(router_url, "silence", "query", "-q")
        assert (code, out.split()) == (0, [sid]), err

        with alertmanager(tmp_path / "am", am_config(router_url)) as am_url:
            await asyncio.to_thread(post_alerts, am_url, [disk_alert()])

            async def quiet() -> list[dict[str, Any]]:
                return [a for a in await alerts_of(router_url)
                        if (a.get("quiet") or {}).get("silenced_by") == [sid]]

            await wait_for(quiet, "the alert shown as silenced")
            # Alertmanager re-sends it every second (group_interval 1s): still nothing.
            await asyncio.sleep(3)
            assert consumer.events == []
            code, out, err = await amtool(router_url, "alert", "query", "-s", "-o", "json")
            assert code == 0, err
            [shown] = json.loads(out)
            assert shown["status"] == {"inhibitedBy": [], "silencedBy": [sid],
                                       "state": "suppressed"}

            code, _, err = await amtool(router_url, "silence", "expire", sid)
            assert code == 0, err
            await wait_for(lambda: _async(len(consumer.events) >= 1), "the delivery")
            await asyncio.sleep(3)
            [event] = consumer.events
            assert event["data"]["kind"] == "trigger" and "DiskFull" in json.dumps(event)
            code, out, err = await amtool(router_url, "silence", "query", "-q", "--expired")
            assert (code, out.split()) == (0, [sid]), err
    finally:
        await server.close()


async def _async(value: Any) -> Any:
    return value


async def test_a_firing_cluster_down_inhibits_the_error_rate_of_its_cluster(
        tmp_path: Path, hook: tuple[FakeWebhookConsumer, str]) -> None:
    consumer, hook_url = hook
    rules = {"inhibit_rules": [{"source_matchers": ['alertname="ClusterDown"'],
                                "target_matchers": ['alertname="HighErrorRate"'],
                                "equal": ["cluster"]}]}
    server, router_url = await start_router(tmp_path, hook_url, rules)
    now = datetime.now(UTC).isoformat()
    try:
        with alertmanager(tmp_path / "am", am_config(router_url)) as am_url:
            down = {"labels": {"alertname": "ClusterDown", "cluster": "eu-1",
                               "severity": "warning"}, "startsAt": now}
            await asyncio.to_thread(post_alerts, am_url, [down])

            async def known() -> bool:  # the cluster went down first
                return any(a["name"] == "ClusterDown" for a in await alerts_of(router_url))

            await wait_for(known, "ClusterDown at the router")
            alerts = [
                down,
                {"labels": {"alertname": "HighErrorRate", "cluster": "eu-1",
                            "severity": "warning"}, "startsAt": now},
                {"labels": {"alertname": "HighErrorRate", "cluster": "us-1",
                            "severity": "warning"}, "startsAt": now},
            ]
            await asyncio.to_thread(post_alerts, am_url, alerts)

            async def delivered() -> set[str]:
                seen = set()
                for e in consumer.events:
                    for a in e["data"].get("alerts", []):
                        seen.add(f"{a['labels']['alertname']}/{a['labels']['cluster']}")
                return seen if len(seen) >= 2 else set()

            await wait_for(delivered, "the uninhibited alerts")
            await asyncio.sleep(3)
            assert await delivered() == {"ClusterDown/eu-1", "HighErrorRate/us-1"}
            shown = {f"{a['name']}/{a['labels']['cluster']}": a["quiet"]
                     for a in await alerts_of(router_url)}
            assert shown["HighErrorRate/eu-1"]["reason"] == "inhibited"
            assert shown["HighErrorRate/us-1"] is None
    finally:
        await server.close()
