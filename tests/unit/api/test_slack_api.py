"""Slack slash commands and buttons: signatures, which incident, what reaches the engine."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import RouterClient
from tests.incidentkit import (
    SLACK_SECRET,
    click_body,
    declare,
    get_incident,
    log_size,
    slack_headers,
    slash_body,
    wait_incident,
    wait_until,
)

SLACK: dict[str, Any] = {
    "slack": {"signing_secret": SLACK_SECRET},
    "oncall": {
        "escalation_policies": [{"name": "payments", "levels": [{"targets": [{"user": "al"}]}]}],
        "services": {"checkout": {"escalation_policy": "payments", "team": "payments"}},
    },
}


async def slash(client: TestClient, text: str, **kw: Any) -> dict[str, Any]:
    body = slash_body(text, **kw)
    resp = await client.post("/slack/commands", data=body, headers=slack_headers(body))
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def click(client: TestClient, action: str, value: str, **kw: Any) -> dict[str, Any]:
    body = click_body(action, value, **kw)
    resp = await client.post("/slack/interactions", data=body, headers=slack_headers(body))
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


@pytest.mark.parametrize("path", ["/slack/commands", "/slack/interactions"])
async def test_without_a_slack_app_the_endpoints_are_404(router_client: RouterClient,
                                                         path: str) -> None:
    client = await router_client()
    body = slash_body("status")
    resp = await client.post(path, data=body, headers=slack_headers(body))
    assert resp.status == 404


def forged(body: bytes) -> dict[str, str]:
    return slack_headers(body, secret="not-the-secret")


def stale(body: bytes) -> dict[str, str]:
    return slack_headers(body, timestamp=time.time() - 301)


def future(body: bytes) -> dict[str, str]:
    return slack_headers(body, timestamp=time.time() + 301)


def unsigned(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/x-www-form-urlencoded"}


def tampered(body: bytes) -> dict[str, str]:
    return slack_headers(body + b"&tampered=1")  # signed a different body


@pytest.mark.parametrize("headers", [forged, stale, future, unsigned, tampered])
@pytest.mark.parametrize("path", ["/slack/commands", "/slack/interactions"])
async def test_forged_or_stale_requests_get_401_and_change_nothing(
    router_client: RouterClient, headers: Any, path: str
) -> None:
    client = await router_client(SLACK)
    incident = await declare(client, title="Existing", severity="SEV2")
    before = await log_size(client)
    if path == "/slack/commands":
        body = slash_body('create "Forged incident" SEV1')
    else:
        body = click_body("incident_resolve", incident["id"])
    resp = await client.post(path, data=body, headers=headers(body))
    assert resp.status == 401
    assert SLACK_SECRET not in await resp.text()
    assert await log_size(client) == before
    after = await get_incident(client, incident["id"])
    assert after["status"] == "investigating"
    assert after["resolved_at"] is None


async def test_help_and_mistakes_answer_privately_and_change_nothing(
    router_client: RouterClient
) -> None:
    client = await router_client(SLACK)
    before = await log_size(client)
    answer = await slash(client, "help")
    assert answer["response_type"] == "ephemeral"
    assert "/incident create" in answer["text"]
    answer = await slash(client, 'create "No severity"')
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith("Give one severity")
    answer = await slash(client, "explode")
    assert answer["text"].startswith("Unknown command 'explode'.")
    assert await log_size(client) == before


async def test_create_declares_an_incident(router_client: RouterClient) -> None:
    client = await router_client(SLACK)
    answer = await slash(client, 'create "Payments & refunds failing" SEV2', user_id="U42")
    assert answer["response_type"] == "in_channel"
    assert "Payments &amp; refunds failing" in answer["text"]
    assert "<@U42>" in answer["text"]

    async def opened() -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = (await (await client.get("/api/v1/incidents")).json())["data"]
        return [i for i in data if i["title"] == "Payments & refunds failing"]

    [incident] = await wait_until(opened, "the declared incident")
    assert incident["severity"] == "SEV2"
    assert incident["timeline"][0]["actor"] == "slack:U42"


async def test_commands_act_on_the_incident_of_the_channel(router_client: RouterClient) -> None:
    client = await router_client(SLACK)
    first = await declare(client, title="First")
    second = await declare(client, title="Second")
    channel = first["channel"].lstrip("#")

    answer = await slash(client, 'update "Looking at the database" status=identified',
                         channel_name=channel)
    assert answer["response_type"] == "in_channel"
    assert first["id"] in answer["text"] and "the incident of this channel" in answer["text"]
    await wait_incident(client, first["id"], lambda i: i["status"] == "identified", "update")
    assert (await get_incident(client, second["id"]))["status"] == "investigating"

    # Outside any incident channel: the most recent open incident, and the answer says so.
    answer = await slash(client, 'update "Still looking"', channel_name="general")
    assert second["id"] in answer["text"] and "most recent open incident" in answer["text"]

    answer = await slash(client, "status", channel_name=channel)
    assert answer["response_type"] == "ephemeral"
    assert first["id"] in answer["text"] and "Status: identified" in answer["text"]

    answer = await slash(client, "page @payments", channel_name=channel)
    assert "paging team payments" in answer["text"]

    answer = await slash(client, f'resolve "Fixed the index" {second["id"]}',
                         channel_name=channel)
    assert second["id"] in answer["text"] and "named in the command" in answer["text"]
    await wait_incident(client, second["id"], lambda i: i["status"] == "resolved", "resolve")
    assert (await get_incident(client, first["id"]))["status"] == "identified"

    before = await log_size(client)
    answer = await slash(client, f'update "too late" {second["id"]}')
    assert "already resolved" in answer["text"]
    answer = await slash(client, "update \"x\" INC-19990101-9")
    assert "no incident INC-19990101-9" in answer["text"]
    assert await log_size(client) == before


async def test_with_no_open_incident_the_answer_says_so(router_client: RouterClient) -> None:
    client = await router_client(SLACK)
    answer = await slash(client, 'update "anything"')
    assert answer["response_type"] == "ephemeral"
    assert "no open incident" in answer["text"]


async def test_buttons_acknowledge_and_resolve(router_client: RouterClient) -> None:
    client = await router_client(SLACK)
    incident = await declare(client)
    iid = incident["id"]

    answer = await click(client, "incident_ack", iid, user_id="U7")
    assert answer["text"] == f"<@U7> acknowledged {iid} (Checkout is down)."
    acked = await wait_incident(client, iid, lambda i: i["acknowledged_at"] is not None, "ack")
    assert any(e["kind"] == "acknowledged" and e["actor"] == "slack:U7"
               for e in acked["timeline"])

    before = await log_size(client)
    answer = await click(client, "incident_ack", iid)
    assert "already acknowledged" in answer["text"]
    assert await log_size(client) == before

    # The button value may be the group key (messages sent before the incident had an id).
    await click(client, "incident_resolve", incident["group_key"])
    await wait_incident(client, iid, lambda i: i["status"] == "resolved", "resolve")

    answer = await click(client, "incident_resolve", "INC-19990101-1")
    assert "not known" in answer["text"]
    answer = await click(client, "something_else", iid)
    assert answer["text"].startswith("Unknown button")


async def test_only_allowed_users_may_act(router_client: RouterClient) -> None:
    client = await router_client({**SLACK, "slack": {"signing_secret": SLACK_SECRET,
                                                     "allowed_users": ["U1"]}})
    incident = await declare(client)
    before = await log_size(client)
    answer = await slash(client, 'create "Nope" SEV1', user_id="U2")
    assert "not allowed" in answer["text"]
    answer = await click(client, "incident_ack", incident["id"], user_id="U2")
    assert "not allowed" in answer["text"]
    assert await log_size(client) == before
    answer = await click(client, "incident_ack", incident["id"], user_id="U1")
    assert "acknowledged" in answer["text"]
