"""The console on the Kafka backend: the same pages and commands as on the embedded one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.api.app import build_app
from router.config import KafkaBackendConfig, parse_config
from router.runtime import build_snapshot
from tests.conftest import BASE_CONFIG, read_testdata
from tests.kafka.test_kafka_engine import eventually
from tests.ui.test_guard import RW, TOKENS, log_in

pytestmark = pytest.mark.kafka


async def test_declare_acknowledge_and_see_alerts_on_kafka(
        aiohttp_client: Any, tmp_path: Path, kafka_config: KafkaBackendConfig) -> None:
    backend = kafka_config.model_dump(mode="json", exclude_none=True)
    config = {**BASE_CONFIG, **TOKENS, "backend": backend}
    snapshot = build_snapshot(parse_config(yaml.safe_dump(config), base_dir=str(tmp_path)))
    client = await aiohttp_client(build_app(snapshot))
    csrf = await log_in(client)

    resp = await client.post("/ui/incidents", data={"csrf": csrf, "title": "Kafka declared",
                                                    "severity": "SEV2"})
    assert resp.status == 200

    async def listed() -> str | None:
        page = await (await client.get("/ui/incidents/rows")).text()
        found = re.search(r'href="/ui/incidents/(INC-[0-9-]+)">[^<]+</a> <span>Kafka declared',
                          page)
        return found.group(1) if found else None

    await eventually(listed)
    ident = await listed()
    resp = await client.post(f"/ui/incidents/{ident}/ack", data={"csrf": csrf},
                             allow_redirects=False)
    assert resp.status == 303

    async def acknowledged() -> bool:
        resp = await client.get(f"/api/v1/incidents/{ident}",
                                headers={"Authorization": f"Bearer {RW}"})
        return (await resp.json())["data"]["acknowledged_at"] is not None

    await eventually(acknowledged)
    live = await (await client.get(f"/ui/incidents/{ident}/live")).text()
    assert "acknowledged by console:alice" in live

    resp = await client.post("/webhooks/alertmanager",
                             data=read_testdata("alertmanager", "firing.json"),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 200

    async def alert_listed() -> bool:
        return "DiskFull" in await (await client.get("/ui/alerts/rows")).text()

    await eventually(alert_listed)
