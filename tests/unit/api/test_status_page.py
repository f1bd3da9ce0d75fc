"""GET /status: the public status page, with nothing internal on it."""

from __future__ import annotations

from typing import Any

from tests.conftest import RouterClient
from tests.incidentkit import declare, wait_until

STATUS: dict[str, Any] = {
    "incidents": {"components": {"checkout": "cmp-1", "search": "cmp-2"},
                  "statuspage_at": "SEV2"},
}


async def page(client: Any) -> str:
    resp = await client.get("/status")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    text: str = await resp.text()
    return text


async def test_all_operational_without_incidents(router_client: RouterClient) -> None:
    client = await router_client(STATUS)
    html = await page(client)
    assert "All systems operational." in html
    assert "<span>checkout</span><span class=\"operational\">Operational</span>" in html
    assert "<span>search</span><span class=\"operational\">Operational</span>" in html
    assert "No open incidents." in html


async def test_open_incidents_show_without_internal_details(router_client: RouterClient) -> None:
    client = await router_client(STATUS)
    incident = await declare(client, title="Checkout <script>alert(1)</script> & co",
                             severity="SEV1", service="checkout", commander="alice-commander",
                             actor="bob-the-operator")
    minor = await declare(client, title="Tiny search glitch", severity="SEV3", service="search")
    # An alert-opened incident carries labels; none of them may show.
    alert = {"name": "CheckoutLatencyHigh", "labels": {
        "service": "checkout", "severity": "critical", "instance": "10.9.8.7:9100",
        "pod": "checkout-7f9c-internal"}, "annotations": {"summary": "Latency is high"}}
    assert (await client.post("/webhooks/generic", json=alert)).status == 200

    async def alert_incident() -> bool:
        data = (await (await client.get("/api/v1/incidents")).json())["data"]
        return any(i["alerts"] for i in data)

    await wait_until(alert_incident, "the alert's incident")

    html = await page(client)
    assert "Some systems are affected" in html
    assert "Checkout &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "<script>" not in html
    assert "<span>checkout</span><span class=\"major_outage\">Major outage</span>" in html
    # SEV3 is below statuspage_at: not on the public page, and its component stays green.
    assert "Tiny search glitch" not in html
    assert "<span>search</span><span class=\"operational\">Operational</span>" in html
    for internal in ("alice-commander", "bob-the-operator", incident["group_key"],
                     incident["id"], minor["id"], "manual:", "10.9.8.7", "checkout-7f9c-internal",
                     incident["channel"], "slack:", "api:"):
        assert internal not in html, internal


async def test_with_statuspage_configured_the_page_is_elsewhere(
    router_client: RouterClient
) -> None:
    client = await router_client({
        "receivers": [{"name": "log", "type": "log"},
                      {"name": "sp", "type": "statuspage", "page_id": "p1", "api_key": "k"}],
        "incidents": {"statuspage_receiver": "sp"},
    })
    assert (await client.get("/status")).status == 404


async def test_root_cause_notes_stay_off_the_public_page(router_client: RouterClient) -> None:
    client = await router_client(STATUS)
    incident = await declare(client, title="Checkout errors", severity="SEV1", service="checkout")
    headers = {}
    resp = await client.post(f"/api/v1/incidents/{incident['id']}/update", headers=headers,
                             json={"status": "identified",
                                   "root_cause": "bad config push to db-primary-7"})
    assert resp.status == 202, await resp.text()

    async def updated() -> bool:
        got = (await (await client.get(f"/api/v1/incidents/{incident['id']}")).json())["data"]
        return bool(got["status"] == "identified")

    await wait_until(updated, "the update")
    html = await page(client)
    assert "db-primary-7" not in html
    assert "root cause" not in html.lower()
