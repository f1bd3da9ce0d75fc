"""Caps on what one request may carry: alerts per request, labels per alert, label size.

Each is reproduced over HTTP on every source (Alertmanager, generic, CloudWatch via SNS) and
answered with a 4xx that names the setting; nothing of a refused request reaches the log.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.api.keys import BACKEND
from router.model import Alert
from router.sources.base import Rejected, check_alert_limits
from tests import snskit
from tests.conftest import RouterClient, read_testdata
from tests.snskit import FakeSns

LIMITS = {"server": {"max_alerts_per_request": 3, "max_labels_per_alert": 8,
                     "max_label_bytes": 256}}


def am_payload(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
               count: int = 1) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(read_testdata("alertmanager", "firing.json"))
    first = payload["alerts"][0]
    first["labels"].update(labels or {})
    first["annotations"].update(annotations or {})
    payload["alerts"] = [
        {**first, "fingerprint": f"fp{i}"} for i in range(count)
    ]
    return payload


def many(n: int) -> dict[str, str]:
    return {f"l{i}": "v" for i in range(n)}


@pytest.mark.parametrize(("payload", "status", "reason", "setting"), [
    (am_payload(count=4), 413, "too_many_alerts", "server.max_alerts_per_request"),
    (am_payload(labels=many(9)), 422, "too_many_labels", "server.max_labels_per_alert"),
    (am_payload(annotations=many(9)), 422, "too_many_labels", "server.max_labels_per_alert"),
    (am_payload(labels={"big": "x" * 257}), 422, "label_too_large", "server.max_label_bytes"),
    (am_payload(labels={"k" * 257: "v"}), 422, "label_too_large", "server.max_label_bytes"),
    (am_payload(annotations={"description": "é" * 129}), 422, "label_too_large",
     "server.max_label_bytes"),
])
async def test_alertmanager_over_a_cap_is_refused_naming_it(
    router_client: RouterClient, payload: dict[str, Any], status: int, reason: str,
    setting: str,
) -> None:
    client = await router_client(LIMITS)
    resp = await client.post("/webhooks/alertmanager", json=payload)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert setting in error
    assert "x" * 64 not in error and "k" * 64 not in error  # the data is not echoed back
    assert await client.app[BACKEND].log_size() == 0
    text = await (await client.get("/metrics")).text()
    assert (f'incident_router_alerts_rejected_total{{reason="{reason}",source="alertmanager"}} '
            "1.0") in text


async def test_alerts_at_the_caps_are_accepted(router_client: RouterClient) -> None:
    client = await router_client(LIMITS)
    # firing.json's alert has 4 labels and 3 annotations; fill both up to 8 (alertname counts).
    payload = am_payload(labels=many(4), annotations={**many(5), "v": "y" * 256}, count=3)
    resp = await client.post("/webhooks/alertmanager", json=payload)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["accepted"] == 3


async def test_default_caps_refuse_50000_labels_and_a_1_mb_label(
    router_client: RouterClient,
) -> None:
    # The reported defect: 50,000 labels and a 1 MB label value were accepted.
    client = await router_client({"server": {"max_body_bytes": 4 * 1024 * 1024}})
    resp = await client.post("/webhooks/generic",
                             json={"name": "Wide", "labels": many(50_000)})
    assert resp.status == 422
    assert "limit of 128" in (await resp.json())["error"]
    resp = await client.post("/webhooks/generic",
                             json={"name": "Big", "labels": {"blob": "x" * 1_000_000}})
    assert resp.status == 422
    assert "limit of 8192 bytes" in (await resp.json())["error"]
    assert await client.app[BACKEND].log_size() == 0


async def test_generic_alerts_per_request_are_capped(router_client: RouterClient) -> None:
    client = await router_client(LIMITS)
    alerts = [{"name": f"A{i}"} for i in range(4)]
    resp = await client.post("/webhooks/generic", json={"alerts": alerts})
    assert resp.status == 413
    assert "4 alerts" in (await resp.json())["error"]
    assert (await client.post("/webhooks/generic", json={"alerts": alerts[:3]})).status == 200


async def test_cloudwatch_alarm_over_the_label_size_is_refused(
    router_client: RouterClient, aiohttp_server: Any,
) -> None:
    # The normalised CloudWatch alert goes through the same check (a long dimension value).
    fake = FakeSns()
    fake.attach(str((await aiohttp_server(fake.app())).make_url("/")))
    cw = {"topic_arns": [snskit.TOPIC_ARN], "cert_host_pattern": snskit.LOCAL_HOST_PATTERN,
          "allow_insecure_urls": True}
    client = await router_client({"server": {"max_label_bytes": 256},
                                  "sources": {"cloudwatch": cw}})
    alarm = json.loads(read_testdata("cloudwatch", "alarm-single-metric.json"))
    alarm["Trigger"]["Dimensions"] = [{"name": "InstanceId", "value": "i-" + "0" * 300}]
    env = fake.notification(json.dumps(alarm))
    resp = await client.post("/webhooks/cloudwatch", data=snskit.to_body(env),
                             headers=snskit.headers_for(env))
    assert resp.status == 422, await resp.text()
    assert "server.max_label_bytes" in (await resp.json())["error"]
    assert await client.app[BACKEND].log_size() == 0


@pytest.mark.parametrize(("labels", "ok"), [
    ({"a": "b" * 16}, True),
    ({"a": "b" * 17}, False),
    ({"a": "ü" * 8}, True),     # 16 bytes of UTF-8
    ({"a": "ü" * 8 + "b"}, False),
    ({f"k{i}": "" for i in range(4)}, True),
    ({f"k{i}": "" for i in range(5)}, False),
])
def test_check_counts_utf8_bytes_and_labels(labels: dict[str, str], ok: bool) -> None:
    alert = Alert.model_validate({"source": "generic", "fingerprint": "f", "status": "firing",
                                  "name": "n", "labels": labels,
                                  "starts_at": "2026-01-01T00:00:00Z",
                                  "received_at": "2026-01-01T00:00:00Z"})
    try:
        check_alert_limits([alert], max_alerts=1, max_labels=4, max_bytes=16)
    except Rejected as exc:
        assert not ok, exc.message
    else:
        assert ok


async def test_past_the_active_alerts_cap_firing_alerts_get_429_and_resolutions_pass(
        router_client: RouterClient) -> None:
    client = await router_client({"server": {"max_active_alerts": 2}})
    assert (await client.post("/webhooks/alertmanager", json=am_payload(count=2))).status == 200
    resp = await client.post("/webhooks/alertmanager", json=am_payload(count=1))
    assert resp.status == 429
    assert "server.max_active_alerts (2)" in (await resp.json())["error"]
    resolved = am_payload(count=1)
    resolved["alerts"][0].update(status="resolved", endsAt="2026-11-27T11:00:00Z")
    assert (await client.post("/webhooks/alertmanager", json=resolved)).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert ('incident_router_alerts_rejected_total{reason="too_many_active",'
            'source="alertmanager"} 1.0') in metrics
