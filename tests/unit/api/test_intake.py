"""Intake over HTTP on the embedded backend: accepted alerts land in the log, bad input doesn't."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.api.keys import BACKEND
from tests.conftest import RouterClient, read_testdata


async def metric(client, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    """The value of one sample on /metrics, read with the Prometheus text parser."""
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"metric {name}{labels} not found")


async def test_alertmanager_payload_is_stored_with_fingerprints(router_client: RouterClient):
    client = await router_client()
    resp = await client.post("/webhooks/alertmanager",
                             data=read_testdata("alertmanager", "firing.json"),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["accepted"] == 2

    alerts = (await (await client.get("/api/v1/alerts")).json())["data"]
    by_fp = {a["fingerprint"]: a for a in alerts}
    assert set(by_fp) == {"1a30ba71cca2921f", "2b41cb82ddb3a320"}
    first = by_fp["1a30ba71cca2921f"]
    assert first["status"] == "firing"
    assert first["ends_at"] is None  # Go zero time means "not ended"
    assert first["value"] == 0.95
    assert first["labels"]["instance"] == "db-1"
    assert first["source"] == "alertmanager"
    assert first["severity"] is not None  # classified before the append
    # An offset timestamp is normalised to UTC.
    assert by_fp["2b41cb82ddb3a320"]["starts_at"].startswith("2026-11-27T10:00:00.5")
    assert await metric(client, "incident_router_alerts_received_total",
                        source="alertmanager") == 2


async def test_resolution_updates_the_alert(router_client: RouterClient):
    client = await router_client()
    await client.post("/webhooks/alertmanager", data=read_testdata("alertmanager", "firing.json"))
    resp = await client.post("/webhooks/alertmanager",
                             data=read_testdata("alertmanager", "resolved.json"))
    assert resp.status == 200
    resolved = (await (await client.get("/api/v1/alerts?status=resolved")).json())["data"]
    assert [a["fingerprint"] for a in resolved] == ["1a30ba71cca2921f"]
    assert resolved[0]["ends_at"].startswith("2026-11-27T10:30:00")
    firing = (await (await client.get("/api/v1/alerts?status=firing")).json())["data"]
    assert [a["fingerprint"] for a in firing] == ["2b41cb82ddb3a320"]


async def test_late_firing_does_not_overwrite_a_later_resolution(router_client: RouterClient):
    client = await router_client()
    await client.post("/webhooks/alertmanager", data=read_testdata("alertmanager", "resolved.json"))
    await client.post("/webhooks/alertmanager", data=read_testdata("alertmanager", "firing.json"))
    alerts = (await (await client.get("/api/v1/alerts?source=alertmanager")).json())["data"]
    status = {a["fingerprint"]: a["status"] for a in alerts}
    assert status["1a30ba71cca2921f"] == "resolved"


async def test_malformed_json_is_400_and_not_logged(router_client: RouterClient):
    client = await router_client()
    resp = await client.post("/webhooks/alertmanager", data=b'{"version": "4", "alerts": [')
    assert resp.status == 400
    assert "malformed JSON" in (await resp.json())["error"]
    assert await client.app[BACKEND].log_size() == 0
    assert await metric(client, "incident_router_alerts_rejected_total",
                        source="alertmanager", reason="malformed_json") == 1


async def test_wrong_shape_is_422_with_the_field_path(router_client: RouterClient):
    client = await router_client()
    payload = json.loads(read_testdata("alertmanager", "firing.json"))
    del payload["alerts"][1]["startsAt"]
    resp = await client.post("/webhooks/alertmanager", json=payload)
    assert resp.status == 422
    assert "alerts.1.startsAt: Field required" in (await resp.json())["error"]
    assert await client.app[BACKEND].log_size() == 0


async def test_other_payload_version_is_refused(router_client: RouterClient):
    client = await router_client()
    payload = json.loads(read_testdata("alertmanager", "firing.json"))
    payload["version"] = "3"
    resp = await client.post("/webhooks/alertmanager", json=payload)
    assert resp.status == 422
    assert "unsupported webhook payload version" in (await resp.json())["error"]


async def test_oversized_body_is_413(router_client: RouterClient):
    client = await router_client({"server": {"max_body_bytes": 2048}})
    payload = json.loads(read_testdata("alertmanager", "firing.json"))
    payload["commonAnnotations"] = {"padding": "x" * 4096}
    resp = await client.post("/webhooks/alertmanager", json=payload)
    assert resp.status == 413
    assert "limit of 2048 bytes" in (await resp.json())["error"]
    assert await client.app[BACKEND].log_size() == 0


@pytest.mark.parametrize("padding", [100, 4096])
async def test_a_chunked_body_is_held_to_the_same_limit(router_client: RouterClient,
                                                        padding: int) -> None:
    client = await router_client({"server": {"max_body_bytes": 2048}})
    payload = json.loads(read_testdata("alertmanager", "firing.json"))
    payload["commonAnnotations"] = {"padding": "x" * padding}
    body = json.dumps(payload).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for i in range(0, len(body), 512):
            yield body[i:i + 512]

    resp = await client.post("/webhooks/alertmanager", data=chunks(),
                             headers={"Content-Type": "application/json"})
    if len(body) > 2048:
        assert resp.status == 413
        assert "limit of 2048 bytes" in (await resp.json())["error"]
        assert await client.app[BACKEND].log_size() == 0
    else:
        assert resp.status == 200
        assert await client.app[BACKEND].log_size() > 0


async def test_bearer_token_is_required_and_never_echoed(router_client: RouterClient):
    secret = "s3cr3t-token-value"
    client = await router_client(
        {"sources": {"alertmanager": {"auth": {"type": "bearer", "tokens": [secret]}}}})
    body = read_testdata("alertmanager", "firing.json")
    missing = await client.post("/webhooks/alertmanager", data=body)
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await client.post("/webhooks/alertmanager", data=body,
                              headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    assert secret not in await wrong.text()
    ok = await client.post("/webhooks/alertmanager", data=body,
                           headers={"Authorization": f"Bearer {secret}"})
    assert ok.status == 200
    assert await client.app[BACKEND].log_size() == 1  # its two alerts of one group: one record
    assert secret not in await (await client.get("/metrics")).text()


async def test_basic_auth(router_client: RouterClient):
    client = await router_client({"sources": {"generic": {
        "auth": {"type": "basic", "username": "am", "password": "pw"}}}})
    body = json.dumps({"name": "Thing", "labels": {"service": "x"}})
    good = base64.b64encode(b"am:pw").decode()
    bad = base64.b64encode(b"am:nope").decode()
    assert (await client.post("/webhooks/generic", data=body)).status == 401
    assert (await client.post("/webhooks/generic", data=body,
                              headers={"Authorization": f"Basic {bad}"})).status == 401
    assert (await client.post("/webhooks/generic", data=body,
                              headers={"Authorization": "Basic !!!"})).status == 401
    assert (await client.post("/webhooks/generic", data=body,
                              headers={"Authorization": f"Basic {good}"})).status == 200


async def test_generic_source(router_client: RouterClient):
    client = await router_client()
    body = {"alerts": [
        {"name": "QueueBacklog", "labels": {"service": "billing"}, "value": 1200,
         "starts_at": "2026-11-27T09:00:00Z"},
        {"name": "QueueBacklog", "status": "resolved", "labels": {"service": "search"}},
    ]}
    resp = await client.post("/webhooks/generic", json=body)
    assert resp.status == 200, await resp.text()
    alerts = (await (await client.get("/api/v1/alerts?source=generic")).json())["data"]
    by_service = {a["labels"]["service"]: a for a in alerts}
    assert by_service["billing"]["value"] == 1200
    assert by_service["billing"]["status"] == "firing"
    assert by_service["search"]["status"] == "resolved"
    assert by_service["search"]["ends_at"] is not None
    # Identity is stable: the same alert posted again keeps its fingerprint.
    again = await client.post("/webhooks/generic", json=body)
    assert again.status == 200
    alerts2 = (await (await client.get("/api/v1/alerts?source=generic")).json())["data"]
    assert {a["fingerprint"] for a in alerts2} == {a["fingerprint"] for a in alerts}


async def test_generic_unknown_field_is_422(router_client: RouterClient):
    client = await router_client()
    resp = await client.post("/webhooks/generic", json={"name": "X", "sevrity": "high"})
    assert resp.status == 422
    assert "sevrity" in (await resp.json())["error"]


async def test_log_unavailable_answers_503_with_retry_after(router_client: RouterClient):
    client = await router_client()
    await client.app[BACKEND].db.close()  # the store can no longer take writes
    resp = await client.post("/webhooks/alertmanager",
                             data=read_testdata("alertmanager", "firing.json"))
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    body = await resp.json()
    assert body["stored"] is False and "nothing was stored" in body["error"]
    assert await metric(client, "incident_router_intake_unavailable_total",
                        source="alertmanager") == 1
    ready = await client.get("/readyz")
    assert ready.status == 503


async def test_health_and_readiness(router_client: RouterClient):
    client = await router_client()
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    text = await (await client.get("/metrics")).text()
    assert "incident_router_build_info" in text
    assert "incident_router_http_request_duration_seconds" in text


async def test_alerts_filter_validation(router_client: RouterClient):
    client = await router_client()
    assert (await client.get("/api/v1/alerts?status=burning")).status == 400


async def test_alertmanager_error_rate_of_7_percent_is_sev2(router_client: RouterClient):
    client = await router_client()
    resp = await client.post("/webhooks/alertmanager",
                             data=read_testdata("alertmanager", "error_rate.json"))
    assert resp.status == 200
    alerts = (await (await client.get("/api/v1/alerts")).json())["data"]
    assert len(alerts) == 1
    assert alerts[0]["value"] == 0.07
    assert alerts[0]["severity"] == "SEV2"
    assert alerts[0]["rule"] == "api-error-rate-sev2"
    assert alerts[0]["runbook_url"] == "/runbooks/api-high-error-rate"  # no external_url
