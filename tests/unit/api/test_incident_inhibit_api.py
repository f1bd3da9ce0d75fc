"""The incident inhibition rule through the HTTP API on the embedded backend: with a SEV1
incident open for `checkout`, a SEV3 alert of checkout is not delivered, `/api/v1/alerts` and
`/api/v2/alerts` say why, the incident's timeline lists it, the metric counts it; resolving
the incident delivers the still-firing alert once."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from router.api.keys import BACKEND, DISPATCHER
from tests.conftest import RouterClient, read_testdata
from tests.incidentkit import AUTH, TOKEN, declare, wait_incident
from tests.ui.test_guard import log_in
from tests.unit.api.test_pipeline_embedded import FAST, settle, sink_server


def latency_alert(status: str = "firing") -> bytes:
    body = json.loads(read_testdata("alertmanager", "firing.json"))
    alert = body["alerts"][0]
    alert["labels"] = {"alertname": "LatencyHigh", "service": "checkout",
                       "severity": "warning", "instance": "web-1"}
    alert["status"] = body["status"] = status
    if status == "resolved":
        alert["endsAt"] = "2026-11-27T11:00:00Z"
    body["alerts"] = [alert]
    return json.dumps(body).encode()


async def start(router_client: RouterClient, aiohttp_server: Any,
                **incidents: Any) -> tuple[TestClient, list[dict[str, Any]]]:
    server, received = await sink_server(aiohttp_server)
    client = await router_client({
        "api": {"tokens": [TOKEN]},
        "receivers": [{"name": "log", "type": "log"},
                      {"name": "hook", "type": "webhook", "url": str(server.make_url("/hook"))}],
        "default_receivers": ["hook"],
        "severities": {s: FAST for s in ("SEV1", "SEV2", "SEV3", "SEV4")},
        "incidents": {"inhibit_lower_severity": True, **incidents},
    })
    return client, received


async def quiet_of(client: TestClient) -> dict[str, Any]:
    resp = await client.get("/api/v1/alerts", params={"status": "firing"}, headers=AUTH)
    (alert,) = (await resp.json())["data"]
    found: dict[str, Any] = alert["quiet"] or {}
    return found


async def test_an_open_sev1_incident_keeps_its_services_sev3_alert_quiet_until_it_closes(
        router_client: RouterClient, aiohttp_server: Any) -> None:
    client, received = await start(router_client, aiohttp_server)
    incident = await declare(client, AUTH, severity="SEV1", service="checkout")
    iid = incident["id"]
    await settle(client)
    received.clear()  # the declared incident's own announcement

    assert (await client.post("/webhooks/alertmanager", data=latency_alert())).status == 200
    await settle(client)
    assert received == []
    quiet = await quiet_of(client)
    assert (quiet["reason"], quiet["ref"], quiet["inhibited_by"]) == ("incident", iid, [iid])
    resp = await client.get("/api/v2/alerts", headers=AUTH)
    (am,) = await resp.json()
    assert am["status"] == {"inhibitedBy": [iid], "silencedBy": [], "state": "suppressed"}
    resp = await client.get("/api/v2/alerts", params={"inhibited": "false"}, headers=AUTH)
    assert await resp.json() == []
    await log_in(client, TOKEN)  # the console says so too
    page = await (await client.get("/ui/alerts")).text()
    assert 'quiet-mark">incident</span>' in page
    inc = await wait_incident(client, iid, lambda i: any(
        e["kind"] == "quieted" for e in i["timeline"]), "the alert on the timeline", AUTH)
    (entry,) = [e for e in inc["timeline"] if e["kind"] == "quieted"]
    assert "LatencyHigh" in entry["text"]
    assert f"inhibited by the open SEV1 incident {iid}" in entry["text"]
    metrics = await (await client.get("/metrics")).text()
    assert 'incident_router_alerts_quieted_total{reason="incident"} 1.0' in metrics

    resp = await client.post(f"/api/v1/incidents/{iid}/resolve", headers=AUTH,
                             json={"message": "fixed", "actor": "alice"})
    assert resp.status in (200, 202), await resp.text()
    await settle(client, received, 2)
    await client.app[BACKEND].engine.drained()
    await client.app[DISPATCHER].wait_idle()
    firing = [r["data"] for r in received if r["type"] == "alert.firing"]
    assert [a["name"] for r in firing for a in r["alerts"]] == ["LatencyHigh"]
    assert await quiet_of(client) == {}


async def test_with_the_rule_off_the_alert_is_delivered(router_client: RouterClient,
                                                        aiohttp_server: Any) -> None:
    client, received = await start(router_client, aiohttp_server,
                                   inhibit_lower_severity=False)
    await declare(client, AUTH, severity="SEV1", service="checkout")
    await settle(client)
    received.clear()
    assert (await client.post("/webhooks/alertmanager", data=latency_alert())).status == 200
    await settle(client, received, 1)
    assert [r["type"] for r in received] == ["alert.firing"]
    assert await quiet_of(client) == {}
