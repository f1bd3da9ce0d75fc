"""The whole incident process of issue 16 as one run: HTTP through a running router, fake
PagerDuty, Slack and Statuspage, the engine on an injected clock (as in
tests/unit/engine/test_incident_restart.py: timers fire when the clock is moved and the engine
drained, never by sleeping).

alert fires -> paged -> acknowledged -> incident channel with its commander -> reminder after
15 min without an update -> update -> resolved by the alert clearing -> post-mortem draft with
its action items table filled -> action item overdue reminder -> post-mortem published (channel
and Statuspage) -> channel archived.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from router.api.keys import BACKEND
from tests.conftest import RouterClient
from tests.e2e.test_incident_e2e import RULE
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import Channel, FakeSlack
from tests.fakes.statuspage import FakeStatuspage
from tests.incidentkit import (
    AUTH,
    SLACK_SECRET,
    TOKEN,
    get_incident,
    open_incidents,
    slack_headers,
    slash_body,
    wait_incident,
    wait_until,
)

ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"


class Clock:
    """The engine's clock: starts at the wall clock, moved by the test."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC)
        self.now = self.start

    def __call__(self) -> datetime:
        return self.now


def config(tmp_path: Path, pd: str, slack: str, sp: str) -> dict[str, Any]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "checkout.yaml").write_text(RULE)
    sev1 = {"group_wait": "0s", "group_interval": "1m", "repeat_interval": "4h",
            "update_every": "15m", "ack_timeout": "30m", "auto_resolve_after": "4h"}
    return {
        "rules_dir": str(rules),
        "api": {"tokens": [TOKEN]},
        "receivers": [
            {"name": "pd", "type": "pagerduty", "routing_key": ROUTING_KEY,
             "url": f"{pd}/v2/enqueue"},
            {"name": "bot", "type": "slack", "bot_token": "xoxb-process", "channel": "C0ALERTS",
             "api_url": f"{slack}/api", "status_page_url": "https://status.example.com"},
            {"name": "sp", "type": "statuspage", "page_id": "page1", "api_key": "sp-key",
             "api_url": f"{sp}/v1"},
        ],
        "default_receivers": ["bot"],
        "severities": {"SEV1": sev1},
        "incidents": {
            "page_receivers": ["pd"], "statuspage_receiver": "sp",
            "components": {"checkout": "CMP1"},
            "slack_channels": {"receiver": "bot", "min_severity": "SEV2",
                               "archive_after": "24h",
                               "users": {"alice": "alice@example.com", "bob": "U0BOB",
                                         "carol": "U0CAROL"}},
        },
        "oncall": {
            "escalation_policies": [{"name": "checkout", "levels": [
                {"targets": [{"user": "alice"}], "delay": "10m"},
                {"targets": [{"user": "bob"}]},
            ]}],
            "services": {"checkout": {"escalation_policy": "checkout", "team": "payments"}},
        },
        "slack": {"signing_secret": SLACK_SECRET},
    }


async def test_the_incident_process_from_alert_to_published_postmortem(
    router_client: RouterClient, aiohttp_server: Any, tmp_path: Path
) -> None:
    pd, slack, sp = FakePagerDuty(ROUTING_KEY), FakeSlack("xoxb-process"), \
        FakeStatuspage("sp-key", "page1")
    slack.add_user("U0ALICE", "alice@example.com")
    slack.add_user("U0BOB")
    slack.add_user("U0CAROL")
    servers: list[TestServer] = [await aiohttp_server(f.app()) for f in (pd, slack, sp)]
    pd_url, slack_url, sp_url = (str(s.make_url("")).rstrip("/") for s in servers)
    client = await router_client(config(tmp_path, pd_url, slack_url, sp_url))
    backend = client.app[BACKEND]
    clock = Clock()
    backend.engine.clock = clock  # type: ignore[attr-defined]

    async def minute(m: float) -> None:
        """Move the engine's clock to `m` minutes after the start and let it catch up."""
        clock.now = clock.start + timedelta(minutes=m)
        await backend.engine.drained()  # type: ignore[attr-defined]

    async def slash(text: str, channel: Channel, user: str = "U0CAROL") -> str:
        body = slash_body(text, user_id=user, channel_name=channel.name, channel_id=channel.id)
        resp = await client.post("/slack/commands", data=body, headers=slack_headers(body))
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["text"])

    async def timeline(iid: str, kind: str) -> list[str]:
        return [e["text"] for e in (await get_incident(client, iid, AUTH))["timeline"]
                if e["kind"] == kind]

    # 1. The alert fires: an incident opens and level 1 (alice) is paged at PagerDuty.
    alert = {"name": "CheckoutDown", "labels": {"env": "prod"},
             "annotations": {"summary": "Checkout returns 500s",
                             "runbook_url": "https://runbooks.example.com/api-high-error-rate"}}
    assert (await client.post("/webhooks/generic", json=alert)).status == 200
    await minute(0)

    [incident] = await wait_until(lambda: open_incidents(client, AUTH), "the SEV1 incident")
    iid = incident["id"]
    await wait_until(lambda: [e for e in pd.accepted if e["event_action"] == "trigger"],
                     "the level 1 page")
    assert (await get_incident(client, iid, AUTH))["details"]["pages"][0]["targets"] == ["alice"]

    # 2. The incident channel: created, alice (paged; e-mail looked up) invited, summary pinned.
    async def channel_ready() -> Channel | None:
        found = slack.channel_named(incident["channel"].lstrip("#"))
        return found if found is not None and found.pins else None

    channel: Channel = await wait_until(channel_ready, "the incident channel")
    assert "U0ALICE" in channel.members
    summary = next(m for m in slack.posts_in(channel.id) if m["ts"] == channel.pins[0])
    assert "*Status:* investigating" in summary["text"]
    assert "*Runbook:* https://runbooks.example.com/api-high-error-rate" in summary["text"]
    assert "*Status page:* https://status.example.com" in summary["text"]

    # 3. Acknowledged in the channel; carol becomes the commander and is invited.
    assert "acknowledging it (the incident of this channel)" in await slash("ack", channel,
                                                                             user="U0ALICE")
    await wait_incident(client, iid, lambda i: i["acknowledged_at"] is not None, "ack", AUTH)
    await slash("lead @carol", channel)
    await wait_incident(client, iid, lambda i: i["commander"] == "carol", "commander", AUTH)
    await minute(1)

    def summary_says(text: str) -> bool:
        return any(u["ts"] == channel.pins[0] and text in u["text"] for u in slack.updates)

    await wait_until(lambda: summary_says("*Commander:* carol"), "the summary's commander")
    await wait_until(lambda: "U0CAROL" in channel.members, "carol invited")
    assert len(slack.channels) == 1  # one channel, whatever happened since

    # 4. 15 minutes without an update: the commander is reminded, with the template.
    await minute(14)
    assert [t for t in await timeline(iid, "reminder") if "update reminder" in t] == []
    await minute(15)
    reminders = await timeline(iid, "reminder")
    assert reminders == ["update reminder: stakeholders are due an update (every 15 min): carol"]
    await wait_until(lambda: any("stakeholders are due an update" in json.dumps(m)
                                 for m in slack.messages), "the reminder in Slack")

    # 5. The update: the summary and the status page follow.
    resp = await client.post(f"/api/v1/incidents/{iid}/update", headers=AUTH, json={
        "status": "identified", "message": "Bad deploy 1234 of the payment gateway",
        "users_affected": "about 8% of checkouts", "actor": "carol"})
    assert resp.status == 202
    await wait_incident(client, iid, lambda i: i["status"] == "identified", "identified", AUTH)
    await minute(16)
    await wait_until(lambda: summary_says("*Latest update:* status identified"),
                     "the summary's latest update")
    public = await wait_until(lambda: next(iter(sp.incidents.values()), None),
                              "the Statuspage incident")
    await wait_until(lambda: public["status"] == "identified", "Statuspage identified")

    # 6. The alert clears: the group's resolution round resolves the incident.
    cleared = {**alert, "status": "resolved"}
    assert (await client.post("/webhooks/generic", json=cleared)).status == 200
    await minute(18)
    await minute(20)
    resolved = await wait_incident(client, iid, lambda i: i["status"] == "resolved",
                                   "resolved by the alert clearing", AUTH)
    assert any(e["kind"] == "resolved" for e in resolved["timeline"])
    await wait_until(lambda: public["status"] == "resolved", "Statuspage resolved")
    await wait_until(lambda: summary_says("*Status:* resolved"), "the summary resolved")
    assert not channel.archived  # archived later

    # 7. Action item; the post-mortem draft fills its action items table.
    due = clock.now.date().isoformat()
    said = await slash(f'action "Add a canary stage to the gateway deploys" @bob due {due}',
                       channel)
    assert "adding the action item" in said
    await wait_incident(client, iid, lambda i: bool(i["details"].get("action_items")),
                        "the action item", AUTH)
    draft = await (await client.get(f"/api/v1/incidents/{iid}/postmortem", headers=AUTH)).text()
    assert "Add a canary stage to the gateway deploys" in draft
    assert any(line.startswith("|") and "Add a canary stage" in line and "bob" in line
               and due in line for line in draft.splitlines())
    assert "about 8% of checkouts" in draft

    # 8. A day later the item is overdue: its owner is reminded, once.
    await minute(20 + 25 * 60)
    overdue = [t for t in await timeline(iid, "reminder") if "action item A1 is overdue" in t]
    assert overdue == [f"action item A1 is overdue (due {due}, owner bob): "
                       "Add a canary stage to the gateway deploys"]
    await minute(20 + 26 * 60)
    assert len([t for t in await timeline(iid, "reminder") if "A1 is overdue" in t]) == 1
    assert not channel.archived  # it waits for the post-mortem (24 h passed)

    # 9. Published: in the channel and as the Statuspage incident's postmortem; once.
    resp = await client.post(f"/api/v1/incidents/{iid}/postmortem/publish", headers=AUTH,
                             json={"actor": "carol"})
    assert resp.status == 202
    await wait_until(lambda: any("Add a canary stage" in str(m.get("text"))
                                 for m in slack.posts_in(channel.id)),
                     "the post-mortem in the channel")
    await wait_until(lambda: public.get("postmortem_body"), "the Statuspage postmortem")
    # The public version: what happened and what is done about it, no people, no internals.
    body = public["postmortem_body"]
    assert body.startswith("# CheckoutDown (checkout)")
    assert "**Who was affected:** about 8% of checkouts" in body
    assert "- Add a canary stage to the gateway deploys" in body
    for internal in ("carol", "alice", "bob", iid, "#inc-", "slack:"):
        assert internal not in body, internal
    assert public["postmortem"]["published_at"] is not None
    again = await client.post(f"/api/v1/incidents/{iid}/postmortem/publish", headers=AUTH,
                              json={})
    assert again.status == 409
    published = await timeline(iid, "postmortem")
    assert published == [f"post-mortem published (channel {incident['channel']}, status page)"]

    # 10. A minute after publishing, the channel is archived.
    await minute(20 + 26 * 60 + 2)
    await wait_until(lambda: channel.archived, "the channel archived")
    assert len(slack.channels) == 1
    assert len([c for m, c in slack.calls if m == "conversations.create"]) == 1
