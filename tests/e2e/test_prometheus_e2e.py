"""The whole monitoring path with real processes on 127.0.0.1: Prometheus scrapes a demo API
and the router; its `APIHighErrorRate` rule fires through the real Alertmanager into the
router (a separate `incident-router serve` process, embedded backend, shipped rules), which
classifies it with the shipped error-rate ladder and tells a fake Slack: SEV2 at 7% errors,
the SEV1 update at 25%, the resolution at 0%. Prometheus also scrapes the router and loads the
router's own alerting rules from deploy/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from aiohttp import web

from tests.fakes.slack import FakeSlack
from tests.procs import alertmanager, prometheus, router_process

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ROUTER_RULES = ROOT / "deploy" / "prometheus" / "rules" / "incident-router.rules.yml"
AM_TOKEN = "e2e-alertmanager-token"
SLACK_TOKEN = "xoxb-e2e-fake"
CHANNEL = "C0INCIDENTS"
DEADLINE = 90.0

T = TypeVar("T")

API_RULES = """
groups:
  - name: demo-api
    rules:
      - alert: APIHighErrorRate
        expr: api_error_ratio{job="demo-api"} > 0.05
        for: 0s
        labels:
          service: api
          env: e2e
        annotations:
          summary: API requests fail
          value: "{{ $value }}"
"""


class DemoApi:
    """The monitored service: its error ratio is whatever the test sets."""

    def __init__(self) -> None:
        self.ratio = 0.0

    async def metrics(self, _: web.Request) -> web.Response:
        text = (
            "# HELP api_error_ratio Share of API requests answered 5xx.\n"
            "# TYPE api_error_ratio gauge\n"
            f'api_error_ratio{{service="api"}} {self.ratio}\n'
        )
        return web.Response(text=text, content_type="text/plain")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        return app


def router_config(tmp: Path, slack_url: str) -> Path:
    quick = {"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h",
             "receivers": ["slack"]}
    config = {
        "server": {"host": "127.0.0.1"},
        "backend": {"type": "embedded", "path": str(tmp / "router.db")},
        "sources": {"alertmanager": {"auth": {"type": "bearer", "tokens": ["${AM_TOKEN}"]}}},
        "rules_dir": str(ROOT / "rules"),
        "receivers": [{
            "name": "slack", "type": "slack", "bot_token": SLACK_TOKEN, "channel": CHANNEL,
            "api_url": f"{slack_url}/api", "rate_limit": {"per_second": 100, "burst": 100},
        }],
        # The shipped rules name no receivers, so the severity policy decides who hears it.
        "default_receivers": ["slack"],
        "severities": {level: quick for level in ("SEV1", "SEV2", "SEV3", "SEV4")},
        # The shipped router rules' Watchdog is the pipeline's heartbeat, not an alert to post.
        "heartbeats": [{"name": "watchdog", "interval": "1m", "grace": "2m",
                        "matchers": ['alertname="Watchdog"'], "receivers": ["slack"]}],
    }
    path = tmp / "router.yaml"
    # The token comes from the environment, as in production (`${AM_TOKEN}`).
    path.write_text(yaml.safe_dump(config).replace("${AM_TOKEN}", AM_TOKEN))
    return path


def alertmanager_config(router_url: str, token_file: Path) -> str:
    # repeat_interval 1s: Alertmanager re-notifies a group only when its set of alerts changes
    # or the repeat interval passes; a changed `value` annotation alone is neither, and the
    # router must see the new value to raise the severity.
    return f"""
route:
  receiver: router
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1s
receivers:
  - name: router
    webhook_configs:
      - url: {router_url}/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
"""


def prometheus_config(demo: str, router: str, am: str) -> str:
    return f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [api-rules.yml, incident-router.rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["{am}"]}}]
scrape_configs:
  - job_name: demo-api
    static_configs: [{{targets: ["{demo}"]}}]
  - job_name: incident-router
    static_configs: [{{targets: ["{router}"]}}]
"""


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


async def eventually(what: str, probe: Callable[[], Awaitable[T | None]]) -> T:
    """Poll `probe` until it returns something; fail after a generous deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        with contextlib.suppress(OSError, ValueError, KeyError):
            result = await probe()
            if result:
                return result
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


def host_port(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


async def test_prometheus_alertmanager_router_slack(tmp_path: Path, aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    slack = FakeSlack(bot_token=SLACK_TOKEN)
    slack_server = await aiohttp_server(slack.app(), host="127.0.0.1")
    demo = DemoApi()
    demo_server = await aiohttp_server(demo.app(), host="127.0.0.1")
    slack_url = str(slack_server.make_url("")).rstrip("/")
    demo_url = str(demo_server.make_url("")).rstrip("/")

    token_file = tmp_path / "am-token"
    token_file.write_text(AM_TOKEN)
    config = router_config(tmp_path, slack_url)

    # The process starters block while they wait for readiness: run them in a thread so this
    # loop keeps serving the fake Slack and the demo API meanwhile.
    stack = contextlib.ExitStack()
    try:
        router_url = await asyncio.to_thread(
            stack.enter_context, router_process(config, tmp_path / "router.log"))
        am_url = await asyncio.to_thread(stack.enter_context, alertmanager(
            tmp_path / "am", alertmanager_config(router_url, token_file)))
        prom_url = await asyncio.to_thread(stack.enter_context, prometheus(
            tmp_path / "prom",
            prometheus_config(host_port(demo_url), host_port(router_url), host_port(am_url)),
            files={"api-rules.yml": API_RULES,
                   "incident-router.rules.yml": ROUTER_RULES.read_text()},
        ))

        async def query(promql: str) -> list[dict[str, Any]]:
            url = f"{prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
            data = await asyncio.to_thread(get_json, url)
            result: list[dict[str, Any]] = data["data"]["result"]
            return result

        # Prometheus scrapes the router itself ...
        async def router_up() -> bool:
            return any(r["value"][1] == "1" for r in await query('up{job="incident-router"}'))

        await eventually("up{job=incident-router} == 1", router_up)
        assert await query('incident_router_build_info{job="incident-router"}')

        # ... and the router's own alerting rules are loaded.
        async def rule_names() -> set[str]:
            data = await asyncio.to_thread(get_json, f"{prom_url}/api/v1/rules")
            return {r["name"] for g in data["data"]["groups"] for r in g["rules"]}

        names = await eventually("rules to load", rule_names)
        assert {"IncidentRouterDown", "IncidentRouterIntake5xx", "IncidentRouterDeliveryFailures",
                "IncidentRouterDeadLetters", "IncidentRouterSLABreaches",
                "IncidentRouterConsumerLag", "APIHighErrorRate"} <= names

        def posts(marker: str) -> list[dict[str, Any]]:
            return [m for m in slack.messages
                    if m.get("channel") == CHANNEL and marker in m.get("text", "")]

        async def found(marker: str) -> list[dict[str, Any]]:
            return posts(marker)

        # 7% errors: above 5%, the SEV2 step of the ladder. One new thread in the channel.
        demo.ratio = 0.07
        first = (await eventually("the SEV2 notification", lambda: found("[SEV2]")))[0]
        assert "thread_ts" not in first
        assert "APIHighErrorRate" in first["text"]
        assert not posts("[SEV1]")

        # 25%: above 20%, SEV1. The update is a reply in the same thread.
        demo.ratio = 0.25
        update = (await eventually("the SEV1 update", lambda: found("[SEV1]")))[0]
        assert update.get("thread_ts") == first["ts"]

        # Back to 0: Prometheus resolves the alert, Alertmanager sends it resolved.
        demo.ratio = 0.0
        resolution = (await eventually("the resolution", lambda: found("Resolved")))[0]
        assert resolution.get("thread_ts") == first["ts"]

        # Every post came from the one incident thread, and nothing was left undelivered.
        threads = {m.get("thread_ts", m["ts"]) for m in slack.messages}
        assert threads == {first["ts"]}

        # Prometheus sees the three deliveries once it scrapes the router again.
        async def three_sent() -> bool:
            sent = await query('incident_router_notifications_sent_total{receiver="slack"}')
            return bool(sent) and float(sent[0]["value"][1]) >= 3

        assert await eventually("3 Slack deliveries in the router's metrics", three_sent)
    finally:
        await asyncio.to_thread(stack.close)
