"""Helpers for incident tests: signed Slack and PagerDuty requests, waiting on the engine."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient

from router.api.keys import BACKEND
from router.signatures import pagerduty_signature, slack_signature

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PD_SECRET = "pd-webhook-secret-for-tests"
TOKEN = "api-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def slack_headers(body: bytes, secret: str = SLACK_SECRET,
                  timestamp: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if timestamp is None else timestamp))
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(secret, ts, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slash_body(text: str, user_id: str = "U123", channel_name: str = "general",
               user_name: str = "alice", channel_id: str = "C123") -> bytes:
    return urlencode({
        "command": "/incident", "text": text, "user_id": user_id, "user_name": user_name,
        "channel_id": channel_id, "channel_name": channel_name, "team_id": "T1",
        "response_url": "https://hooks.slack.com/commands/T1/1/x", "trigger_id": "1.2.3",
    }).encode()


def click_body(action_id: str, value: str, user_id: str = "U123") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "alice"},
        "container": {"type": "message", "channel_id": "C123", "message_ts": "1.2"},
        "actions": [{"action_id": action_id, "value": value, "type": "button",
                     "action_ts": "1700000000.1"}],
        "response_url": "https://hooks.slack.com/actions/T1/1/x",
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def pd_event(event_type: str, incident_key: str, agent: str = "Bob Oncall") -> bytes:
    return json.dumps({"event": {
        "id": "01DEN3K8QHWFX6WZ5Z6PHVWBQ1", "event_type": event_type,
        "resource_type": "incident", "occurred_at": "2026-01-05T10:00:00.000Z",
        "agent": {"id": "PLH1HKV", "type": "user_reference", "summary": agent},
        "data": {"id": "PGR0VU2", "type": "incident", "number": 2, "status": "acknowledged",
                 "title": "A little bump in the road", "incident_key": incident_key,
                 "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                 "service": {"id": "PF9KMXH", "summary": "API Service"}},
    }}).encode()


def pd_headers(body: bytes, secret: str = PD_SECRET) -> dict[str, str]:
    return {"X-PagerDuty-Signature": pagerduty_signature(secret, body),
            "Content-Type": "application/json"}


async def log_size(client: TestClient) -> int:
    size: int = await client.app[BACKEND].log_size()  # type: ignore[attr-defined]
    return size


async def wait_until(probe: Callable[[], Any], what: str, within: float = 10.0) -> Any:
    """Poll a probe (plain or async) until it returns something truthy; fail naming `what`."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def get_incident(client: TestClient, incident_id: str,
                       headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/incidents/{incident_id}", headers=headers or {})
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def open_incidents(client: TestClient,
                         headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The open incidents, newest first (one page)."""
    resp = await client.get("/api/v1/incidents", params={"status": "open"},
                            headers=headers or {})
    data: list[dict[str, Any]] = (await resp.json())["data"]
    return data


async def wait_incident(client: TestClient, incident_id: str,
                        check: Callable[[dict[str, Any]], bool], what: str,
                        headers: dict[str, str] | None = None,
                        within: float = 10.0) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        inc = await get_incident(client, incident_id, headers)
        return inc if check(inc) else None

    found: dict[str, Any] = await wait_until(probe, what, within)
    return found


async def declare(client: TestClient, headers: dict[str, str] | None = None,
                  **fields: Any) -> dict[str, Any]:
    """Declare through the REST API and return the opened incident."""
    body = {"title": "Checkout is down", "severity": "SEV2", **fields}
    resp = await client.post("/api/v1/incidents", json=body, headers=headers or {})
    assert resp.status in (201, 202), await resp.text()
    data = await resp.json()
    if resp.status == 201:
        incident: dict[str, Any] = data["data"]
        return incident
    group_key = data["group_key"]

    async def probe() -> dict[str, Any] | None:
        r = await client.get("/api/v1/incidents", params={"group_key": group_key},
                             headers=headers or {})
        found = (await r.json())["data"]
        return found[0] if found else None

    opened: dict[str, Any] = await wait_until(probe, f"incident of {group_key}")
    return opened
