"""An incident from first alert to post-mortem draft, against fake PagerDuty, Slack, Statuspage.

A SEV1 alert opens an incident and pages escalation level 1 at PagerDuty; nobody acknowledges,
so level 2 is paged after level 1's (shortened) delay; an Acknowledge click in Slack stops the
escalation; `/incident update` and `/incident resolve` post the update and resolution templates
in the incident's Slack thread and move the Statuspage incident along; the post-mortem draft
lists every one of those events with the right durations.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from router.postmortem import format_span, format_utc
from tests.conftest import RouterClient
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.fakes.statuspage import FakeStatuspage
from tests.incidentkit import (
    AUTH,
    SLACK_SECRET,
    TOKEN,
    click_body,
    get_incident,
    open_incidents,
    slack_headers,
    slash_body,
    wait_incident,
    wait_until,
)

LEVEL1_DELAY = 2  # seconds before level 2 is paged
LEVEL2_DELAY = 4  # seconds before level 3 would be paged (the ack must stop it)

RULE = """
rules:
  - name: checkout-down
    match:
      source: generic
      labels: ['alertname="CheckoutDown"']
    set:
      severity: SEV1
      service: checkout
      team: payments
      group_by: [alertname, service]
"""


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def config(tmp_path: Path, pd: str, slack: str, sp: str) -> dict[str, Any]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "checkout.yaml").write_text(RULE)
    fast = {"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"}
    return {
        "rules_dir": str(rules),
        "api": {"tokens": [TOKEN]},
        "receivers": [
            {"name": "log", "type": "log"},
            {"name": "pd", "type": "pagerduty", "routing_key": "R0UT1NGKEY0000000000000000000000",
             "url": f"{pd}/v2/enqueue"},
            {"name": "slack", "type": "slack", "bot_token": "xoxb-e2e", "channel": "C0INC",
             "api_url": f"{slack}/api"},
            {"name": "sp", "type": "statuspage", "page_id": "page1", "api_key": "sp-key",
             "api_url": f"{sp}/v1"},
        ],
        "default_receivers": ["slack"],
        "severities": {s: fast for s in ("SEV1", "SEV2", "SEV3", "SEV4")},
        "incidents": {"open_at": "SEV2", "page_at": "SEV2", "page_receivers": ["pd"],
                      "statuspage_receiver": "sp", "statuspage_at": "SEV2",
                      "components": {"checkout": "CMP1"}},
        "oncall": {
            "schedules": [
                {"name": "primary", "users": ["alice"], "start": "2026-01-05T09:00:00"},
                {"name": "secondary", "users": ["bob"], "start": "2026-01-05T09:00:00"},
            ],
            "escalation_policies": [{"name": "checkout", "levels": [
                {"targets": [{"schedule": "primary"}], "delay": f"{LEVEL1_DELAY}s"},
                {"targets": [{"schedule": "secondary"}], "delay": f"{LEVEL2_DELAY}s"},
                {"targets": [{"user": "manager-carol"}]},
            ]}],
            "services": {"checkout": {"escalation_policy": "checkout", "team": "payments"}},
        },
        "slack": {"signing_secret": SLACK_SECRET},
    }


def triggers(pd: FakePagerDuty) -> list[dict[str, Any]]:
    return [e for e in pd.accepted if e["event_action"] == "trigger"]


def ack_button(slack: FakeSlack) -> tuple[str, str] | None:
    """(button value, message ts) of the first message with an Acknowledge button."""
    for message in slack.messages:
        for attachment in message.get("attachments", []):
            for block in attachment.get("blocks", []):
                for element in block.get("elements", []):
                    if element.get("action_id") == "incident_ack":
                        return str(element["value"]), str(message["ts"])
    return None


async def slash(client: TestClient, text: str, channel: str) -> dict[str, Any]:
    body = slash_body(text, user_id="U0CMDR", channel_name=channel)
    resp = await client.post("/slack/commands", data=body, headers=slack_headers(body))
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


def thread_replies(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages if m.get("thread_ts")]


async def test_sev1_from_alert_to_postmortem(router_client: RouterClient, aiohttp_server: Any,
                                             tmp_path: Path) -> None:
    pd, slack, sp = FakePagerDuty("R0UT1NGKEY0000000000000000000000"), FakeSlack("xoxb-e2e"), \
        FakeStatuspage("sp-key", "page1")
    servers: list[TestServer] = [await aiohttp_server(f.app()) for f in (pd, slack, sp)]
    pd_url, slack_url, sp_url = (str(s.make_url("")).rstrip("/") for s in servers)
    client = await router_client(config(tmp_path, pd_url, slack_url, sp_url))

    # 1. A SEV1 alert opens an incident and pages level 1 (alice) at PagerDuty.
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=90)
    alert = {"name": "CheckoutDown", "labels": {"env": "prod"},
             "annotations": {"summary": "Checkout returns 500s"},
             "starts_at": started.isoformat().replace("+00:00", "Z")}
    assert (await client.post("/webhooks/generic", json=alert)).status == 200

    [incident] = await wait_until(lambda: open_incidents(client, AUTH), "the SEV1 incident")
    iid = incident["id"]
    assert incident["severity"] == "SEV1" and incident["service"] == "checkout"
    await wait_until(lambda: (len(triggers(pd)) >= 1), "the level 1 page")
    paged = await get_incident(client, iid, AUTH)
    [level1] = paged["details"]["pages"]
    assert (level1["level"], level1["targets"]) == (1, ["alice"])
    assert triggers(pd)[0]["dedup_key"] == level1["key"]

    # 2. Nobody acknowledges: level 2 (bob) is paged after level 1's delay.
    await wait_until(lambda: (len(triggers(pd)) >= 2), "the level 2 page", within=20)
    paged = await get_incident(client, iid, AUTH)
    level2 = paged["details"]["pages"][1]
    assert (level2["level"], level2["targets"]) == (2, ["bob"])
    assert triggers(pd)[1]["dedup_key"] == level2["key"] != level1["key"]

    # 3. Acknowledge in Slack (the button of the incident's message): escalation stops.
    value, header_ts = await wait_until(lambda: ack_button(slack),
                                        "the Slack incident message with its buttons")
    body = click_body("incident_ack", value, user_id="U0BOB")
    resp = await client.post("/slack/interactions", data=body, headers=slack_headers(body))
    assert resp.status == 200
    acked = await wait_incident(client, iid, lambda i: i["acknowledged_at"] is not None,
                                "the Slack acknowledgement", AUTH)
    # Wait past the moment level 3 would have been paged: it is not.
    level2_at = max(parse_time(e["at"]) for e in acked["timeline"] if e["kind"] == "escalated")
    pause = (level2_at + timedelta(seconds=LEVEL2_DELAY + 1.5)) - datetime.now(UTC)
    await asyncio.sleep(max(0.0, pause.total_seconds()))
    assert len(triggers(pd)) == 2
    assert "manager-carol" not in json.dumps(pd.accepted)

    # 4. `/incident update` in the incident's channel: update template in the thread,
    #    Statuspage moves to identified.
    channel = incident["channel"].lstrip("#")
    answer = await slash(client, 'update "Bad deploy 1234 of the payment gateway" '
                                 "status=identified", channel)
    assert iid in answer["text"]
    await wait_until(lambda: (any("Bad deploy 1234" in json.dumps(m)
                                        for m in thread_replies(slack))),
                     "the update in the Slack thread")
    update_reply = next(m for m in thread_replies(slack) if "Bad deploy 1234" in json.dumps(m))
    assert update_reply["thread_ts"] == header_ts
    assert "status: identified" in json.dumps(update_reply).lower()

    async def sp_incident() -> dict[str, Any] | None:
        return next(iter(sp.incidents.values()), None)

    public = await wait_until(sp_incident, "the Statuspage incident")
    await wait_until(lambda: (public["status"] == "identified"),
                     "Statuspage status identified")
    assert any("Bad deploy 1234" in u["body"] for u in public["incident_updates"])
    assert sp.components.get("CMP1") == "major_outage"

    # 5. `/incident resolve`: resolution template in the thread, Statuspage resolved.
    await slash(client, 'resolve "Rolled back deploy 1234; errors are gone"', channel)
    await wait_until(lambda: (any("Rolled back deploy 1234" in json.dumps(m)
                                        for m in thread_replies(slack))),
                     "the resolution in the Slack thread")
    resolution = next(m for m in thread_replies(slack)
                      if "Rolled back deploy 1234" in json.dumps(m))
    assert resolution["thread_ts"] == header_ts and "Resolved" in json.dumps(resolution)
    await wait_until(lambda: (public["status"] == "resolved"), "Statuspage resolved")
    assert sp.components.get("CMP1") == "operational"
    assert len(triggers(pd)) == 2

    # 6. The post-mortem draft has every event in its timeline, with the right durations.
    final = await wait_incident(client, iid, lambda i: i["status"] == "resolved", "resolved",
                                AUTH)
    resp = await client.get(f"/api/v1/incidents/{iid}/postmortem", headers=AUTH)
    assert resp.status == 200
    text = await resp.text()
    kinds = [e["kind"] for e in final["timeline"]]
    for kind in ("paged", "escalated", "acknowledged", "status_update", "resolved"):
        assert kind in kinds, kind
    assert "alert_fired" in kinds or "opened" in kinds
    rows = [line for line in text.splitlines() if line.startswith("| 20")]
    for entry in final["timeline"]:
        stamp = format_utc(parse_time(entry["at"]))
        assert any(r.startswith(f"| {stamp} | {entry['kind']} |") for r in rows), entry
    ack_by = next(e for e in final["timeline"] if e["kind"] == "acknowledged")
    assert ack_by["actor"] == "slack:U0BOB"

    opened_at = parse_time(final["opened_at"])
    acked_at = parse_time(final["acknowledged_at"])
    resolved_at = parse_time(final["resolved_at"])
    assert f"acknowledged after {format_span(acked_at - opened_at)}" in text
    lasted = {format_span(resolved_at - started), format_span(resolved_at - opened_at)}
    assert any(f"lasted {span}" in text for span in lasted), lasted
    pages = [parse_time(e["at"]) for e in final["timeline"] if e["kind"] == "paged"]
    escalated = [parse_time(e["at"]) for e in final["timeline"] if e["kind"] == "escalated"]
    assert escalated[0] - min(pages) >= timedelta(seconds=LEVEL1_DELAY)
    assert all(t < acked_at for t in escalated)
    assert "Bad deploy 1234 of the payment gateway" in text
