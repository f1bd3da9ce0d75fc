"""Issue 12 acceptance: `make run` (examples/router.yaml + the shipped rules) classifies the
10-alert Alertmanager `HighErrorRate` payload with percentage values as 7 x SEV2 and 3 x SEV1."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from router.api.app import build_app
from router.config import EmbeddedBackendConfig, load_config
from router.runtime import build_snapshot
from tests.conftest import ROOT, read_testdata

PAYLOAD = ("alertmanager", "high_error_rate_percent.json")


async def test_make_run_classifies_percentage_error_rates(aiohttp_client: Any,
                                                          tmp_path: Path) -> None:
    config = load_config(ROOT / "examples" / "router.yaml")
    assert config.resolve(config.rules_dir).resolve() == (ROOT / "rules").resolve()
    # Everything as `make run` has it, but the database in the test's own directory.
    config = config.model_copy(update={"backend": EmbeddedBackendConfig(
        path=str(tmp_path / "router.db"))})
    client = await aiohttp_client(build_app(build_snapshot(config)))

    resp = await client.post("/webhooks/alertmanager", data=read_testdata(*PAYLOAD))
    assert resp.status == 200, await resp.text()
    alerts = (await (await client.get("/api/v1/alerts?source=alertmanager")).json())["data"]

    sent = {a["labels"]["service"]: float(a["annotations"]["value"])
            for a in orjson.loads(read_testdata(*PAYLOAD))["alerts"]}
    got = {a["labels"]["service"]: a["severity"] for a in alerts}
    assert got == {s: "SEV1" if v > 20 else "SEV2" for s, v in sent.items()}
    assert Counter(got.values()) == {"SEV2": 7, "SEV1": 3}
    assert {a["rule"] for a in alerts} == {"error-rate, error-rate-sev1",
                                           "error-rate, error-rate-sev2"}
    assert {a["group_key"] for a in alerts} == {f"HighErrorRate|{s}|prod" for s in sent}
