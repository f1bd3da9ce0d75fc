"""The incidents REST API: declare, act, read, post-mortem; auth, 404s and bad bodies."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from router.cli import main
from tests.conftest import ROOT, RouterClient
from tests.incidentkit import AUTH, TOKEN, declare, log_size, wait_incident

TOKENS = {"api": {"tokens": [TOKEN]}}
ONCALL = {
    "oncall": {
        "escalation_policies": [{"name": "payments", "levels": [{"targets": [{"user": "al"}]}]}],
        "services": {"checkout": {"escalation_policy": "payments", "team": "payments"}},
    },
}

ENDPOINTS = [
    ("POST", "/api/v1/incidents"),
    ("GET", "/api/v1/incidents"),
    ("GET", "/api/v1/incidents/INC-20260105-1"),
    ("GET", "/api/v1/incidents/INC-20260105-1/postmortem"),
    ("POST", "/api/v1/incidents/INC-20260105-1/ack"),
    ("POST", "/api/v1/incidents/INC-20260105-1/update"),
    ("POST", "/api/v1/incidents/INC-20260105-1/resolve"),
    ("POST", "/api/v1/incidents/INC-20260105-1/page"),
    ("POST", "/api/v1/incidents/INC-20260105-1/postmortem-done"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"}])
async def test_every_endpoint_needs_a_token_when_tokens_are_configured(
    router_client: RouterClient, method: str, path: str, headers: dict[str, str]
) -> None:
    client = await router_client(TOKENS)
    before = await log_size(client)
    resp = await client.request(method, path, json={"title": "x", "severity": "SEV1"},
                                headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in await resp.text()
    assert await log_size(client) == before


@pytest.mark.parametrize(("method", "path"), ENDPOINTS[2:])
async def test_an_unknown_incident_is_a_404(router_client: RouterClient, method: str,
                                            path: str) -> None:
    client = await router_client(TOKENS)
    resp = await client.request(method, path, json={"message": "x"}, headers=AUTH)
    assert resp.status == 404
    assert (await resp.json())["error"] == "no incident INC-20260105-1"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "body is not valid JSON"),
        (b"[1, 2]", 400, "body must be a JSON object"),
        (b'{"severity": "SEV2"}', 422, "title: Field required"),
        (b'{"title": "x", "severity": "SEV9"}', 422, "severity: Input should be"),
        (b'{"title": "", "severity": "SEV2"}', 422, "title: String should have at least 1"),
        (b'{"title": "x", "severity": "SEV2", "colour": "red"}', 422,
         "colour: Extra inputs are not permitted"),
    ],
)
async def test_a_bad_declare_body_says_what_is_wrong(router_client: RouterClient, body: bytes,
                                                     status: int, message: str) -> None:
    client = await router_client()
    before = await log_size(client)
    resp = await client.post("/api/v1/incidents", data=body,
                             headers={"Content-Type": "application/json"})
    assert resp.status == status
    assert message in (await resp.json())["error"]
    assert await log_size(client) == before


async def test_declare_get_update_resolve_postmortem_round_trip(
    router_client: RouterClient
) -> None:
    client = await router_client({**TOKENS, **ONCALL})
    resp = await client.post("/api/v1/incidents", headers=AUTH, json={
        "title": "Checkout is down", "severity": "SEV2", "service": "checkout",
        "impact": "Customers cannot pay", "commander": "alice", "actor": "alice"})
    assert resp.status in (201, 202), await resp.text()
    if resp.status == 201:
        incident = (await resp.json())["data"]
        assert resp.headers["Location"] == f"/api/v1/incidents/{incident['id']}"
    else:
        incident = await declare(client, AUTH)  # pragma: no cover - slow engine
    iid = incident["id"]
    assert iid.startswith("INC-")
    assert incident["status"] == "investigating"
    assert incident["severity"] == "SEV2"
    assert incident["channel"].startswith("#inc-")
    assert incident["group_key"].startswith("manual:")

    got = await wait_incident(client, iid, lambda i: bool(i["timeline"]), "a timeline", AUTH)
    assert got["title"] == "Checkout is down"
    assert got["timeline"][0]["kind"] == "opened"

    listed = await client.get("/api/v1/incidents", params={"status": "open"}, headers=AUTH)
    assert iid in [i["id"] for i in (await listed.json())["data"]]

    resp = await client.post(f"/api/v1/incidents/{iid}/ack", headers=AUTH)
    assert resp.status == 202
    await wait_incident(client, iid, lambda i: i["acknowledged_at"] is not None, "ack", AUTH)

    resp = await client.post(f"/api/v1/incidents/{iid}/update", headers=AUTH, json={
        "status": "identified", "message": "A bad deploy of the payment gateway",
        "root_cause": "Connection pool exhausted after deploy 1234", "eta": "30 min"})
    assert resp.status == 202, await resp.text()
    assert (await resp.json()) == {"status": "accepted", "incident_id": iid, "command": "update"}
    updated = await wait_incident(client, iid, lambda i: i["status"] == "identified",
                                  "status identified", AUTH)
    assert updated["root_cause"] == "Connection pool exhausted after deploy 1234"

    resp = await client.post(f"/api/v1/incidents/{iid}/page", headers=AUTH,
                             json={"team": "payments"})
    assert resp.status == 202

    resp = await client.post(f"/api/v1/incidents/{iid}/resolve", headers=AUTH,
                             json={"message": "Rolled back deploy 1234"})
    assert resp.status == 202
    resolved = await wait_incident(client, iid, lambda i: i["status"] == "resolved",
                                   "resolved", AUTH)
    assert resolved["resolved_at"] is not None
    kinds = [e["kind"] for e in resolved["timeline"]]
    for kind in ("opened", "acknowledged", "status_update", "resolved"):
        assert kind in kinds

    resp = await client.get(f"/api/v1/incidents/{iid}/postmortem", headers=AUTH)
    assert resp.status == 200
    assert resp.content_type == "text/markdown"
    text = await resp.text()
    assert text.startswith(f"# Post-mortem: Checkout is down ({iid})")
    assert "Connection pool exhausted after deploy 1234" in text
    assert "## Timeline" in text and "## Action items" in text

    # Acting on a resolved incident is a conflict; marking the post-mortem done is not.
    resp = await client.post(f"/api/v1/incidents/{iid}/ack", headers=AUTH)
    assert resp.status == 409
    resp = await client.post(f"/api/v1/incidents/{iid}/postmortem-done", headers=AUTH,
                             json={"url": "https://wiki.example.com/pm/1"})
    assert resp.status == 202
    await wait_incident(client, iid, lambda i: i["postmortem_done"], "postmortem done", AUTH)

    listed = await client.get("/api/v1/incidents", params={"status": "resolved"}, headers=AUTH)
    assert iid in [i["id"] for i in (await listed.json())["data"]]
    listed = await client.get("/api/v1/incidents", params={"status": "open"}, headers=AUTH)
    assert iid not in [i["id"] for i in (await listed.json())["data"]]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("update", {}, 422, "give at least one of message, status"),
        ("update", {"status": "resolved"}, 422, "status: Input should be"),
        ("update", {"severity": "SEV0"}, 422, "severity: Input should be"),
        ("page", {}, 422, "give exactly one of team or user"),
        ("page", {"team": "payments", "user": "al"}, 422, "give exactly one of team or user"),
        ("page", {"team": "nobody"}, 422, "no service in oncall.services is owned by team"),
        ("postmortem-done", {}, 409, "is not resolved yet"),
    ],
)
async def test_bad_commands_say_what_is_wrong_and_change_nothing(
    router_client: RouterClient, path: str, body: dict[str, Any], status: int, message: str
) -> None:
    client = await router_client(ONCALL)
    incident = await declare(client)
    before = await log_size(client)
    resp = await client.post(f"/api/v1/incidents/{incident['id']}/{path}", json=body)
    assert resp.status == status
    assert message in (await resp.json())["error"]
    assert await log_size(client) == before


async def test_without_tokens_the_api_is_open(router_client: RouterClient) -> None:
    client = await router_client()
    incident = await declare(client, severity="SEV3")
    resp = await client.get(f"/api/v1/incidents/{incident['id']}")
    assert resp.status == 200
    assert (await resp.json())["data"]["severity"] == "SEV3"


@pytest.mark.parametrize("query", [{"status": "burning"}, {"limit": "x"}, {"limit": "0"}])
async def test_bad_list_queries_are_400(router_client: RouterClient,
                                        query: dict[str, str]) -> None:
    client = await router_client()
    assert (await client.get("/api/v1/incidents", params=query)).status == 400


async def test_cli_postmortem_reads_the_embedded_view_or_a_running_router(
    router_client: RouterClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await router_client()
    incident = await declare(client, title="Search is slow")
    iid = incident["id"]
    assert (await client.post(f"/api/v1/incidents/{iid}/resolve", json={})).status == 202
    await wait_incident(client, iid, lambda i: i["status"] == "resolved", "resolved")
    config = str(tmp_path / "router.yaml")

    assert await asyncio.to_thread(main, ["postmortem", iid.lower(), "--config", config]) == 0
    assert capsys.readouterr().out.startswith(f"# Post-mortem: Search is slow ({iid})")

    url = str(client.make_url("/")).rstrip("/")
    out = tmp_path / "pm.md"
    code = await asyncio.to_thread(main, ["postmortem", iid, "--config", config, "--url", url,
                                          "-o", str(out)])
    assert code == 0
    assert out.read_text().startswith(f"# Post-mortem: Search is slow ({iid})")

    assert await asyncio.to_thread(main, ["postmortem", "INC-19990101-1", "--config",
                                          config]) == 1
    assert "no incident INC-19990101-1" in capsys.readouterr().err


def test_cli_postmortem_with_kafka_needs_a_running_router(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(f"rules_dir: {ROOT / 'rules'}\n"
                    "backend: {type: kafka, bootstrap_servers: ['127.0.0.1:1']}\n")
    assert main(["postmortem", "INC-20260105-1", "--config", str(path)]) == 1
    assert "requires a running router" in capsys.readouterr().err


async def test_action_items_over_the_api_after_resolution(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    incident = await declare(client, AUTH)
    iid = incident["id"]
    assert (await client.post(f"/api/v1/incidents/{iid}/resolve", headers=AUTH,
                              json={})).status == 202
    await wait_incident(client, iid, lambda i: i["status"] == "resolved", "resolved", AUTH)
    resp = await client.post(f"/api/v1/incidents/{iid}/actions", headers=AUTH,
                             json={"text": "Add a canary stage", "owner": "bob",
                                   "due": "2026-12-10"})
    assert resp.status == 202
    got = await wait_incident(client, iid, lambda i: bool(i["details"].get("action_items")),
                              "the action item", AUTH)
    [item] = got["details"]["action_items"]
    assert (item["id"], item["owner"], item["due"], item["status"]) == (
        "A1", "bob", "2026-12-10", "open")
    assert (await client.post(f"/api/v1/incidents/{iid}/actions/A1", headers=AUTH,
                              json={"status": "done"})).status == 202
    await wait_incident(client, iid,
                        lambda i: i["details"]["action_items"][0]["status"] == "done",
                        "the item done", AUTH)
    missing = await client.post(f"/api/v1/incidents/{iid}/actions/A9", headers=AUTH,
                                json={"status": "done"})
    assert missing.status == 404
    bad = await client.post(f"/api/v1/incidents/{iid}/actions", headers=AUTH,
                            json={"text": "x", "due": "next week"})
    assert bad.status == 422
    text = await (await client.get(f"/api/v1/incidents/{iid}/postmortem", headers=AUTH)).text()
    assert "| Add a canary stage | bob | 2026-12-10 | done |" in text
