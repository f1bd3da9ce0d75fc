"""SEV4 into the daily digest through the whole embedded router: an alert posted to the
Alertmanager intake pages nobody and appears in the next digest, delivered to a Standard
Webhooks consumer (tests/fakes/webhook.py). The engine's clock is injected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from router.api.keys import BACKEND, DISPATCHER
from tests.conftest import RouterClient, read_testdata
from tests.fakes.webhook import PATH, FakeWebhookConsumer
from tests.unit.api.test_pipeline_embedded import FAST, sink_server

SECRET = "whsec_" + "ZGlnZXN0LXRlc3Qtc2VjcmV0LWtleS0wMTIzNDU2Nzg5"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def sev4_alert() -> bytes:
    body = json.loads(read_testdata("alertmanager", "firing.json"))
    alert = body["alerts"][0]
    alert["labels"] = {"alertname": "CertExpiresIn30d", "service": "billing",
                       "severity": "info", "instance": "web-1"}
    body["alerts"] = [alert]
    return json.dumps(body).encode()


async def test_a_sev4_alert_pages_nobody_and_appears_in_the_next_digest(
        router_client: RouterClient, aiohttp_server: Any) -> None:
    pager, paged = await sink_server(aiohttp_server)
    consumer = FakeWebhookConsumer(SECRET)
    digest_server = await aiohttp_server(consumer.app())
    client = await router_client({
        "receivers": [
            {"name": "log", "type": "log"},
            {"name": "pager", "type": "webhook", "url": str(pager.make_url("/hook"))},
            {"name": "digest", "type": "webhook", "url": str(digest_server.make_url(PATH)),
             "secrets": [SECRET]},
        ],
        "default_receivers": ["pager"],
        "severities": {"SEV4": {**FAST, "receivers": ["pager"], "route": "digest"}},
        "digest": {"receivers": ["digest"], "at": "09:00", "time_zone": "Europe/Berlin"},
    })
    clock = Clock()
    engine = client.app[BACKEND].engine
    engine.clock = clock

    async def settle() -> None:
        await engine.drained()
        await client.app[DISPATCHER].wait_idle()

    assert (await client.post("/webhooks/alertmanager", data=sev4_alert())).status == 200
    await settle()
    clock.now = START + timedelta(hours=2)
    await settle()
    assert paged == [] and consumer.events == []

    clock.now = datetime(2026, 3, 3, 7, 59, tzinfo=UTC)  # 08:59 in Berlin: not yet
    await settle()
    assert consumer.events == []
    clock.now = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    await settle()
    (event,) = consumer.events
    data = event["data"]
    assert data["title"] == "Daily digest: 1 alert group, 1 still firing"
    assert [(r["title"], r["status"]) for r in data["details"]["digest"]] == [
        ("CertExpiresIn30d (billing)", "firing")]
    assert "CertExpiresIn30d (billing): firing" in data["message"]
    assert paged == []
