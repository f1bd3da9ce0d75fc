"""Issue 12, seen from outside: an incident ends when its problem ends, pages stop, and every
receiver hears one resolution. Real signed SNS deliveries (local certificate), Alertmanager v4
payloads, and fake PagerDuty / Slack servers speaking their documented APIs.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from router.api.keys import RUNTIME
from tests import snskit
from tests.conftest import RouterClient, read_testdata
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.incidentkit import AUTH, TOKEN, get_incident, wait_incident, wait_until

KEY = "R0UT1NGKEY0000000000000000000000"
LEVEL_DELAY = 3  # seconds between escalation levels (the issue saw 10 s)


def config(pd: str, slack: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    fast = {"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"}
    cfg: dict[str, Any] = {
        "api": {"tokens": [TOKEN]},
        "receivers": [
            {"name": "log", "type": "log"},
            {"name": "pd", "type": "pagerduty", "routing_key": KEY, "url": f"{pd}/v2/enqueue"},
            {"name": "slack", "type": "slack", "bot_token": "xoxb-e2e", "channel": "C0INC",
             "api_url": f"{slack}/api"},
        ],
        "default_receivers": ["slack", "pd"],
        "severities": {s: fast for s in ("SEV1", "SEV2")},
        "incidents": {"page_receivers": ["pd"]},
        "oncall": {
            "escalation_policies": [{"name": "api", "levels": [
                {"targets": [{"user": "alice"}], "delay": f"{LEVEL_DELAY}s"},
                {"targets": [{"user": "bob"}], "delay": f"{LEVEL_DELAY}s"},
                {"targets": [{"user": "carol"}]},
            ]}],
            "services": {"api": {"escalation_policy": "api", "team": "platform"},
                         "db": {"escalation_policy": "api", "team": "db"}},
        },
        "sources": {"cloudwatch": {"topic_arns": [snskit.TOPIC_ARN],
                                   "cert_host_pattern": snskit.LOCAL_HOST_PATTERN,
                                   "allow_insecure_urls": True}},
    }
    cfg.update(extra or {})
    return cfg


async def start(router_client: RouterClient, aiohttp_server: Any,
                extra: dict[str, Any] | None = None,
                ) -> tuple[TestClient, FakePagerDuty, FakeSlack, snskit.FakeSns]:
    pd, slack, sns = FakePagerDuty(KEY), FakeSlack("xoxb-e2e"), snskit.FakeSns()
    pd_server = await aiohttp_server(pd.app())
    slack_server = await aiohttp_server(slack.app())
    sns_server = await aiohttp_server(sns.app())
    sns.attach(str(sns_server.make_url("/")))
    client = await router_client(config(str(pd_server.make_url("")).rstrip("/"),
                                        str(slack_server.make_url("")).rstrip("/"), extra))
    return client, pd, slack, sns


def alarm(state: str, changed: datetime) -> str:
    doc = json.loads(read_testdata("cloudwatch", "alarm-metric-math.json"))
    doc["NewStateValue"] = state
    doc["OldStateValue"] = "OK" if state == "ALARM" else "ALARM"
    value = 23.4 if state == "ALARM" else 0.4
    doc["NewStateReason"] = (f"Threshold Crossed: 1 datapoint [{value} (27/11/26 12:05:00)] "
                             f"was {'greater' if state == 'ALARM' else 'not greater'} than "
                             "the threshold (5.0).")
    doc["StateChangeTime"] = changed.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return json.dumps(doc)


async def sns_post(client: TestClient, sns: snskit.FakeSns, message: str) -> None:
    env = sns.notification(message)
    resp = await client.post("/webhooks/cloudwatch", data=snskit.to_body(env),
                             headers=snskit.headers_for(env))
    assert resp.status == 200, await resp.text()


async def open_incident(client: TestClient) -> dict[str, Any]:
    async def opened() -> list[dict[str, Any]]:
        resp = await client.get("/api/v1/incidents", headers=AUTH)
        data: list[dict[str, Any]] = (await resp.json())["data"]
        return data

    [incident] = await wait_until(opened, "the incident")
    return incident


def actions(pd: FakePagerDuty, action: str) -> list[str]:
    return [e["dedup_key"] for e in pd.accepted if e["event_action"] == action]


def resolved_posts(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages if "resolved" in json.dumps(m).lower()]


async def test_cloudwatch_ok_resolves_the_incident_and_every_page(
        router_client: RouterClient, aiohttp_server: Any) -> None:
    client, pd, slack, sns = await start(router_client, aiohttp_server)
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=24)
    await sns_post(client, sns, alarm("ALARM", fired))
    incident = await open_incident(client)
    assert incident["severity"] == "SEV1"
    await wait_until(lambda: len(actions(pd, "trigger")) >= 2, "the alert and level 1 page")

    # The OK message, well before level 2 is due.
    ok_at = datetime.now(UTC).replace(microsecond=0)
    await sns_post(client, sns, alarm("OK", ok_at))
    done = await wait_incident(client, incident["id"], lambda i: i["status"] == "resolved",
                               "resolved by the OK message", AUTH)
    assert done["escalation_level"] is None
    # Past when levels 2 and 3 would have been paged: nobody was.
    await asyncio.sleep(2 * LEVEL_DELAY + 1)
    final = await get_incident(client, incident["id"], AUTH)
    assert [p["level"] for p in final["details"]["pages"]] == [1]
    triggers = actions(pd, "trigger")
    assert len(triggers) == 2  # the alert's event and the level 1 page
    assert sorted(actions(pd, "resolve")) == sorted(triggers)  # each resolved, once
    assert [e["kind"] for e in final["timeline"]].count("escalated") == 0
    assert not any(e["kind"] == "sla_breach" for e in final["timeline"])
    # The duration runs from the alarm to the OK, not from the OK message's own time.
    resolution = resolved_posts(slack)
    assert len(resolution) == 1
    assert "Duration: 24m (from " in json.dumps(resolution[0])


def am_payload(status: str, starts: datetime, ends: datetime | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(read_testdata("alertmanager", "firing.json"))
    alert = doc["alerts"][0]
    alert["labels"].update({"severity": "critical", "service": "db"})
    alert["status"] = status
    alert["startsAt"] = starts.isoformat().replace("+00:00", "Z")
    alert["endsAt"] = (ends.isoformat().replace("+00:00", "Z") if ends
                       else "0001-01-01T00:00:00Z")
    doc["alerts"] = [alert]
    doc["status"] = status
    return doc


async def test_alertmanager_resolution_resolves_it_and_a_later_resolve_notifies_nobody(
        router_client: RouterClient, aiohttp_server: Any) -> None:
    client, pd, slack, _ = await start(router_client, aiohttp_server)
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    resp = await client.post("/webhooks/alertmanager", json=am_payload("firing", starts))
    assert resp.status == 200, await resp.text()
    incident = await open_incident(client)
    await wait_until(lambda: len(actions(pd, "trigger")) >= 2, "the alert and its page")

    ends = datetime.now(UTC).replace(microsecond=0)
    resp = await client.post("/webhooks/alertmanager",
                             json=am_payload("resolved", starts, ends))
    assert resp.status == 200
    await wait_incident(client, incident["id"], lambda i: i["status"] == "resolved",
                        "resolved by Alertmanager", AUTH)
    await wait_until(lambda: len(actions(pd, "resolve")) >= 2, "both PagerDuty resolves")
    await wait_until(lambda: resolved_posts(slack), "the Slack resolution")

    # A person presses Resolve afterwards: already resolved, nobody is told again.
    resp = await client.post(f"/api/v1/incidents/{incident['id']}/resolve", headers=AUTH,
                             json={"message": "done"})
    assert resp.status == 409
    assert "already resolved" in (await resp.json())["error"]
    # Alertmanager re-sends the resolved notification (it does, every group_interval).
    await client.post("/webhooks/alertmanager", json=am_payload("resolved", starts, ends))
    await asyncio.sleep(1.5)
    assert len(actions(pd, "resolve")) == 2
    assert len(resolved_posts(slack)) == 1

    # The timeline is in the order things happened, each entry saying when it was recorded.
    final = await get_incident(client, incident["id"], AUTH)
    times = [datetime.fromisoformat(e["at"]) for e in final["timeline"]]
    assert times == sorted(times)
    first = final["timeline"][0]
    assert first["kind"] == "alert_fired"
    assert first["at"].startswith(starts.strftime("%Y-%m-%dT%H:%M"))
    assert all(e["recorded_at"] for e in final["timeline"])



async def test_a_partial_sev1_override_keeps_paging_at_once_and_its_slas(
        router_client: RouterClient, aiohttp_server: Any) -> None:
    # The edit examples/router.yaml invites: only SEV1's receivers. SEV1 still notifies at once
    # (group_wait 0, not the generic 30 s) and keeps its 15 min acknowledge SLA.
    client, _, slack, _ = await start(router_client, aiohttp_server, {
        "severities": {"SEV1": {"receivers": ["slack"]}}})
    resp = await client.post("/webhooks/alertmanager", json=am_payload(
        "firing", datetime.now(UTC).replace(microsecond=0)))
    assert resp.status == 200
    await wait_until(lambda: slack.messages, "the first SEV1 notification", within=10)
    incident = await open_incident(client)
    assert incident["severity"] == "SEV1"
    assert client.app[RUNTIME].snapshot.config.severities.SEV1.ack_sla == timedelta(minutes=15)
