"""PagerDuty webhooks v3: acknowledging or resolving there acknowledges or resolves here."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RouterClient
from tests.incidentkit import (
    PD_SECRET,
    declare,
    get_incident,
    log_size,
    pd_event,
    pd_headers,
    wait_incident,
)

PD: dict[str, Any] = {"pagerduty_webhook": {"secrets": ["old-secret", PD_SECRET]}}


async def test_without_config_the_endpoint_is_404(router_client: RouterClient) -> None:
    client = await router_client()
    body = pd_event("incident.acknowledged", "x")
    resp = await client.post("/webhooks/pagerduty", data=body, headers=pd_headers(body))
    assert resp.status == 404


@pytest.mark.parametrize(
    "headers",
    [
        lambda body: pd_headers(body, secret="forged"),
        lambda body: pd_headers(body + b" "),  # signed a different body
        lambda body: {"X-PagerDuty-Signature": "v0=abc"},
        lambda body: {},
    ],
)
async def test_forged_signatures_get_401_and_change_nothing(router_client: RouterClient,
                                                            headers: Any) -> None:
    client = await router_client(PD)
    incident = await declare(client)
    before = await log_size(client)
    body = pd_event("incident.resolved", incident["details"]["dedup_key"])
    resp = await client.post("/webhooks/pagerduty", data=body, headers=headers(body))
    assert resp.status == 401
    assert PD_SECRET not in await resp.text()
    assert await log_size(client) == before
    assert (await get_incident(client, incident["id"]))["status"] == "investigating"


@pytest.mark.parametrize("suffix", ["", "-L1", "-L12", ":page-2", ":manual-1"])
async def test_acknowledged_then_resolved_in_pagerduty(router_client: RouterClient,
                                                       suffix: str) -> None:
    client = await router_client(PD)
    incident = await declare(client)
    key = incident["details"]["dedup_key"] + suffix

    body = pd_event("incident.acknowledged", key, agent="Bob Oncall")
    resp = await client.post("/webhooks/pagerduty", data=body, headers=pd_headers(body))
    assert resp.status == 202, await resp.text()
    acked = await wait_incident(client, incident["id"],
                                lambda i: i["acknowledged_at"] is not None, "ack")
    assert any(e["kind"] == "acknowledged" and e["actor"] == "pagerduty:Bob Oncall"
               for e in acked["timeline"])

    # PagerDuty retries, and echoes the router's own acknowledgements: no second command.
    before = await log_size(client)
    resp = await client.post("/webhooks/pagerduty", data=body, headers=pd_headers(body))
    assert resp.status == 200
    assert (await resp.json())["status"] == "ignored"
    assert await log_size(client) == before

    body = pd_event("incident.resolved", key)
    resp = await client.post("/webhooks/pagerduty", data=body, headers=pd_headers(body))
    assert resp.status == 202
    await wait_incident(client, incident["id"], lambda i: i["status"] == "resolved", "resolve")


@pytest.mark.parametrize(
    ("event_type", "key", "reason"),
    [
        ("incident.annotated", None, "does not change incidents"),
        ("incident.triggered", None, "does not change incidents"),
        ("incident.acknowledged", "somebody-elses-key", "no incident of this router"),
        ("incident.resolved", "somebody-elses-key-L2", "no incident of this router"),
    ],
)
async def test_other_events_are_ignored_with_200(router_client: RouterClient, event_type: str,
                                                 key: str | None, reason: str) -> None:
    client = await router_client(PD)
    incident = await declare(client)
    before = await log_size(client)
    body = pd_event(event_type, key or incident["details"]["dedup_key"])
    resp = await client.post("/webhooks/pagerduty", data=body, headers=pd_headers(body))
    assert resp.status == 200
    answer = await resp.json()
    assert answer["status"] == "ignored" and reason in answer["reason"]
    assert await log_size(client) == before


async def test_a_malformed_signed_body_is_a_4xx(router_client: RouterClient) -> None:
    client = await router_client(PD)
    body = b'{"event": {"id": 1}}'
    resp = await client.post("/webhooks/pagerduty", data=body, headers=pd_headers(body))
    assert resp.status in (400, 422)
