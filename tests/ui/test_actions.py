"""The console's writes over HTTP: each appends the REST API's command, which the engine
applies; bad input is answered with what is wrong."""

from __future__ import annotations

from html import unescape
from typing import Any

import yaml
from aiohttp.test_utils import TestClient

from router.api.keys import BACKEND
from tests.conftest import RouterClient
from tests.ui.test_guard import RW, TOKENS, csrf_of, declare, log_in

ONCALL = yaml.safe_load("""
oncall:
  schedules:
    - {name: primary, rotation: weekly, start: "2026-01-05T09:00", users: [bob]}
  escalation_policies:
    - name: payments
      levels: [{targets: [{schedule: primary}]}]
  services:
    checkout: {escalation_policy: payments, team: payments}
""")


async def incident(client: TestClient, ident: str) -> dict[str, Any]:
    await client.server.app[BACKEND].engine.drained()
    resp = await client.get(f"/api/v1/incidents/{ident}",
                            headers={"Authorization": f"Bearer {RW}"})
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def test_change_severity_and_page_a_team_and_a_person(
        router_client: RouterClient) -> None:
    client = await router_client({**TOKENS, **ONCALL})
    ident = await declare(client)
    csrf = await log_in(client)
    resp = await client.post(f"/ui/incidents/{ident}/update",
                             data={"csrf": csrf, "severity": "SEV1"}, allow_redirects=False)
    assert resp.status == 303
    assert (await incident(client, ident))["severity"] == "SEV1"

    resp = await client.post(f"/ui/incidents/{ident}/page",
                             data={"csrf": csrf, "kind": "team", "target": "nobody"})
    assert resp.status == 400
    assert "no service in oncall.services is owned by team 'nobody'" in unescape(await resp.text())
    for kind, target in (("team", "payments"), ("user", "@carol")):
        resp = await client.post(f"/ui/incidents/{ident}/page", allow_redirects=False,
                                 data={"csrf": csrf, "kind": kind, "target": target})
        assert resp.status == 303, await resp.text()
    paged = [e for e in (await incident(client, ident))["timeline"] if e["kind"] == "paged"]
    assert [(e["text"], e["actor"]) for e in paged] == [
        ("paged team payments: bob", "console:alice"), ("paged user carol: carol", "console:alice")]


async def test_an_update_needs_something_to_say_and_the_preview_words_it(
        router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    ident = await declare(client)
    csrf = await log_in(client)
    resp = await client.post(f"/ui/incidents/{ident}/update", data={"csrf": csrf})
    assert resp.status == 400
    assert "give at least one of message" in await resp.text()
    resp = await client.post(f"/ui/incidents/{ident}/preview",
                             data={"csrf": csrf, "message": "Failing over to eu-west-2",
                                   "status": "monitoring", "eta": "15:30 UTC"})
    text = await resp.text()
    assert resp.status == 200
    assert "(Update)" in text and "Status: Monitoring" in text and "ETA: 15:30 UTC" in text
    assert "Failing over to eu-west-2" in text
    # A preview appends nothing.
    assert all(e["kind"] != "status_update" for e in (await incident(client, ident))["timeline"])


async def test_a_resolved_incident_takes_no_more_commands(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    ident = await declare(client)
    csrf = await log_in(client)
    resp = await client.post(f"/ui/incidents/{ident}/resolve", data={"csrf": csrf},
                             allow_redirects=False)
    assert resp.status == 303
    assert (await incident(client, ident))["status"] == "resolved"
    resp = await client.post(f"/ui/incidents/{ident}/ack", data={"csrf": csrf})
    assert resp.status == 400 and f"incident {ident} is resolved" in await resp.text()


async def test_the_postmortem_downloads_as_markdown(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    ident = await declare(client)
    await log_in(client)
    resp = await client.get(f"/ui/incidents/{ident}/postmortem.md")
    assert resp.status == 200
    assert resp.content_type == "text/markdown"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{ident}-postmortem.md"'
    assert (await resp.text()).startswith("# Post-mortem")


async def test_replay_needs_one_dead_letter_or_one_receiver(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    csrf = await log_in(client)
    resp = await client.post("/ui/dead-letters/replay", data={"csrf": csrf})
    assert resp.status == 422 and "not both or neither" in await resp.text()
    resp = await client.post("/ui/dead-letters/replay", allow_redirects=False,
                             data={"csrf": csrf, "receiver": "log"})
    assert resp.status == 303 and resp.headers["Location"] == "/ui/dead-letters?done=0"


async def test_the_console_root_leads_to_the_alerts(router_client: RouterClient) -> None:
    client = await router_client()
    resp = await client.get("/ui")
    assert resp.status == 200 and resp.url.path == "/ui/alerts"
    page = await resp.text()
    assert csrf_of(page) and "anonymous · read-write" in page
