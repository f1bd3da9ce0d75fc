"""Behind an Alertmanager HA pair, the Kafka backend pages once per group (issue 13).

Two real Alertmanagers (Debian's package) gossip on loopback as a cluster; each has both router
replicas (real `incident-router serve` processes on one Kafka group) as webhook targets, so
every notification of a group can reach the routers up to four times: from each Alertmanager
(the second one sends when the first one's notification log entry has not reached it within
its peer timeout, made short here so that it does) to each replica. The alerts are pushed to
both Alertmanagers, as Prometheus does, then resolved. PagerDuty (the fake in tests/fakes) must
see, per group, exactly one trigger carrying all of its alerts and one resolve: no update, no
second trigger.

Completion is counted, not timed: both Alertmanagers have flushed and dropped every
aggregation group (`alertmanager_dispatcher_aggregation_groups` 0), and every notification the
routers' engines emitted was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.contract.harness import RouterProcess, router_config, settled, wait_for
from tests.e2e.test_alertmanager_e2e import post_alerts
from tests.fakes.pagerduty import FakePagerDuty
from tests.procs import alertmanager, free_port

pytestmark = pytest.mark.kafka

KEY = "R0UT1NGKEY0000000000000000000000"
GROUPS = 20
PER_GROUP = 5
NAME = "HaPair"


def am_config(router_urls: list[str]) -> str:
    """One group per service, like the router's default group key (alert name + service)."""
    hooks = "".join(f"""
      - url: {url}/webhooks/alertmanager
        send_resolved: true""" for url in router_urls)
    return f"""
route:
  receiver: routers
  group_by: [alertname, service]
  group_wait: 2s
  group_interval: 3s
  repeat_interval: 1h
receivers:
  - name: routers
    webhook_configs:{hooks}
"""


def alerts(starts: datetime, ends: datetime | None = None) -> list[dict[str, object]]:
    """GROUPS groups of PER_GROUP alerts in one request, as Prometheus posts them."""
    out: list[dict[str, object]] = []
    for g in range(GROUPS):
        for i in range(PER_GROUP):
            alert: dict[str, object] = {
                "labels": {"alertname": NAME, "service": f"svc-{g}", "instance": f"host-{i}",
                           "severity": "critical"},
                "annotations": {"summary": f"HA pair alert {g}/{i}"},
                "startsAt": starts.isoformat(),
                "generatorURL": "http://127.0.0.1:9090/graph",
            }
            if ends is not None:
                alert["endsAt"] = ends.isoformat()
            out.append(alert)
    return out


def am_metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith(name) and line[len(name)] in " {")


def by_incident(pd: FakePagerDuty) -> dict[str, Counter[str]]:
    """PagerDuty event actions per dedup key (one incident, one group)."""
    actions: dict[str, Counter[str]] = {}
    for event in pd.accepted:
        actions.setdefault(event["dedup_key"], Counter())[event["event_action"]] += 1
    return actions


def groups_triggered(pd: FakePagerDuty) -> dict[str, list[int]]:
    """Group key -> the alert count of each trigger PagerDuty got for it."""
    out: dict[str, list[int]] = {}
    for event in pd.accepted:
        if event["event_action"] == "trigger":
            details = event["payload"]["custom_details"]
            out.setdefault(details["group_key"], []).append(len(details["alerts"]))
    return out


async def until(check: Callable[[], bool], within: float, what: str,
                routers: list[RouterProcess], detail: Callable[[], str] | None = None) -> None:
    """`harness.wait_for` off the event loop, so the fake PagerDuty keeps answering."""
    await asyncio.to_thread(wait_for, check, within, what, routers, detail)


async def test_an_alertmanager_ha_pair_pages_once_and_resolves_once_per_group(
        kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path) -> None:
    pd = FakePagerDuty(KEY)
    pd_server = TestServer(pd.app(), host="127.0.0.1")
    await pd_server.start_server()
    pd_url = str(pd_server.make_url("")).rstrip("/")
    rules = tmp_path / "rules"
    rules.mkdir()
    backend = {"type": "kafka", "bootstrap_servers": [kafka_bootstrap],
               "topic_prefix": kafka_topic_prefix, "group_id": kafka_topic_prefix,
               "partitions": 4, "replication_factor": 1}
    config: dict[str, Any] = router_config(backend, "", rules)
    config["receivers"] = [{"name": "pd", "type": "pagerduty", "routing_key": KEY,
                            "url": f"{pd_url}/v2/enqueue"}]
    config["default_receivers"] = ["pd"]
    routers = [RouterProcess(f"router-{i}", tmp_path / "routers", config) for i in range(2)]
    stack = contextlib.ExitStack()
    try:
        for r in routers:
            stack.callback(r.kill)
            await asyncio.to_thread(r.start)
        for r in routers:  # the first may be rebalancing since the second joined
            await asyncio.to_thread(r.wait_ready, 60)

        gossip = [free_port(), free_port()]
        ams: list[str] = []
        for k in range(2):
            peer = gossip[1 - k]
            # A peer timeout shorter than a webhook round trip: the second instance sends
            # before the first one's notification log entry reaches it (as when gossip lags),
            # so the routers get the pair's duplicates, not just the first one's notifications.
            flags = (f"--cluster.listen-address=127.0.0.1:{gossip[k]}",
                     f"--cluster.peer=127.0.0.1:{peer}", "--cluster.peer-timeout=10ms",
                     "--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=2s")
            ams.append(await asyncio.to_thread(
                stack.enter_context, alertmanager(tmp_path / f"am{k}",
                                                  am_config([r.url for r in routers]), flags)))

        def clustered() -> bool:
            return all(am_metric(am, "alertmanager_cluster_members") == 2 for am in ams)

        await until(clustered, 60, "the two Alertmanagers to form a cluster", routers)

        # Started now, as Prometheus reports a rule without `for:` that has just fired. (An
        # alert that started more than group_wait ago makes Alertmanager flush its group at
        # once, with whichever of the request's alerts it has inserted so far, and the rest
        # one group_interval later: a partial first notification on any backend.)
        starts = datetime.now(UTC)
        for am in ams:  # as Prometheus does: every alert to every Alertmanager
            await asyncio.to_thread(post_alerts, am, alerts(starts))

        def pd_summary() -> str:
            return f"PagerDuty: {dict(Counter(e['event_action'] for e in pd.accepted))}"

        await until(lambda: len(groups_triggered(pd)) >= GROUPS, 120,
                    f"a trigger for each of the {GROUPS} groups", routers, pd_summary)

        ends = datetime.now(UTC)
        for am in ams:
            await asyncio.to_thread(post_alerts, am, alerts(starts, ends))

        def resolved() -> int:
            return sum(c["resolve"] >= 1 for c in by_incident(pd).values())

        await until(lambda: resolved() >= GROUPS, 120,
                    f"a resolve for each of the {GROUPS} groups", routers, pd_summary)

        # Both Alertmanagers have flushed every group's resolution (and dropped the group):
        # nothing more is on its way to the routers. Then the routers sent all they decided.
        def flushed() -> bool:
            return all(am_metric(am, "alertmanager_dispatcher_aggregation_groups") == 0
                       for am in ams)

        await until(flushed, 120, "both Alertmanagers to flush every group", routers)
        await until(lambda: settled(routers), 60, "the routers to send all they decided",
                    routers, pd_summary)

        sent = sum(am_metric(am, "alertmanager_notifications_total") for am in ams)
        print(f"Alertmanager webhook notifications sent: {sent:g}; {pd_summary()}")
        # Firing and resolved, to both replicas, from one instance: 80. More: the pair's
        # duplicates reached the routers, which is what this is about.
        assert sent > 2 * GROUPS * 2
        triggers = groups_triggered(pd)
        assert sorted(triggers) == sorted(f"{NAME}|svc-{g}" for g in range(GROUPS))
        # One trigger per group, carrying all of its alerts: no update, no second trigger.
        assert {k: v for k, v in triggers.items() if v != [PER_GROUP]} == {}
        actions = by_incident(pd)
        assert len(actions) == GROUPS
        assert {k: dict(c) for k, c in actions.items()
                if c != Counter(trigger=1, resolve=1)} == {}
    finally:
        await asyncio.to_thread(stack.close)
        await pd_server.close()
