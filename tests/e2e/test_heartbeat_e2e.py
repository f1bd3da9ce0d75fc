"""A heartbeat from outside: real Prometheus fires an always-on `Watchdog` rule through the real
Alertmanager into the router, whose `heartbeats` entry takes it as its beat. Alertmanager is
stopped: the router raises `HeartbeatMissing` to its receiver; Alertmanager comes back: the
alarm resolves."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from router.api.keys import BACKEND
from tests.e2e.test_alertmanager_e2e import am_config
from tests.e2e.test_silence_e2e import hook, start_router, wait_for  # noqa: F401
from tests.fakes.webhook import FakeWebhookConsumer
from tests.procs import alertmanager, prometheus

pytestmark = pytest.mark.e2e

WATCHDOG = """
groups:
  - name: meta
    rules:
      - alert: Watchdog
        expr: vector(1)
        labels: {severity: none}
        annotations: {summary: "The alerting pipeline works (always firing)"}
"""


def prom_config(am: str) -> str:
    return f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [watchdog.yml]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["{am}"]}}]
"""


def kinds(consumer: FakeWebhookConsumer) -> list[str]:
    return [f"{e['data']['kind']}:{a['name']}" for e in consumer.events
            for a in e["data"].get("alerts", [])[:1]]


async def test_a_stopped_alertmanager_raises_the_heartbeat_alarm_and_its_return_resolves_it(
        tmp_path: Path, hook: tuple[FakeWebhookConsumer, str]) -> None:  # noqa: F811
    consumer, hook_url = hook
    server, router_url = await start_router(tmp_path, hook_url, {"heartbeats": [{
        "name": "prometheus", "interval": "2s", "grace": "3s",
        "matchers": ['alertname="Watchdog"'], "severity": "SEV2", "receivers": ["hook"]}],
        "severities": {"SEV2": {"group_wait": "0s", "group_interval": "1s",
                                "repeat_interval": "1h", "receivers": ["hook"]}}})
    am_yaml = am_config(router_url).replace("repeat_interval: 1h", "repeat_interval: 1s")
    try:
        with contextlib.ExitStack() as stack:
            am_url = await asyncio.to_thread(
                stack.enter_context, alertmanager(tmp_path / "am", am_yaml))
            am = am_url.removeprefix("http://")
            await asyncio.to_thread(stack.enter_context, prometheus(
                tmp_path / "prom", prom_config(am), {"watchdog.yml": WATCHDOG}))

            await wait_for(lambda: _beats(server), "the first heartbeat", within=60)
            assert consumer.events == []
            await asyncio.to_thread(stack.close)  # Prometheus and Alertmanager stop
        await wait_for(lambda: _async("trigger:HeartbeatMissing" in kinds(consumer)),
                       "the HeartbeatMissing alarm", within=60)

        with contextlib.ExitStack() as stack:
            am_url = await asyncio.to_thread(
                stack.enter_context, alertmanager(tmp_path / "am2", am_yaml))
            await asyncio.to_thread(stack.enter_context, prometheus(
                tmp_path / "prom2", prom_config(am_url.removeprefix("http://")),
                {"watchdog.yml": WATCHDOG}))
            await wait_for(lambda: _async("resolve:HeartbeatMissing" in kinds(consumer)),
                           "the alarm resolved", within=60)
        assert kinds(consumer).count("trigger:HeartbeatMissing") == 1
        assert not any("Watchdog" in json.dumps(e) for e in consumer.events)
    finally:
        await server.close()


async def _beats(server: Any) -> bool:
    backend = server.app[BACKEND]
    engine = backend.engine.engine
    state = engine.get("heartbeat:prometheus")
    return state is not None and state.heartbeat_due is not None


async def _async(value: Any) -> Any:
    return value
