"""Hot reload: a valid config replaces the old one atomically; an invalid one is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BASE_CONFIG, RouterClient, merge
from tests.procs import free_port, wait_until

RULE = """
rules:
  - name: thing-is-sev1
    match: {labels: ['alertname="Thing"']}
    set: {severity: SEV1, team: reload-test}
"""


def gauge(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not found")


async def classify_thing(client: Any) -> dict[str, Any]:
    resp = await client.post("/webhooks/generic", json={"name": "Thing", "labels": {"x": "1"}})
    assert resp.status == 200
    alerts = (await (await client.get("/api/v1/alerts?source=generic")).json())["data"]
    result: dict[str, Any] = alerts[0]
    return result


async def test_reload_swaps_rules_and_refuses_invalid_config(router_client: RouterClient,
                                                             tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    client = await router_client({"rules_dir": str(rules)})
    assert (await classify_thing(client))["severity"] == "SEV3"  # no rule yet: default

    (rules / "10-thing.yaml").write_text(RULE)
    resp = await client.post("/-/reload")
    assert resp.status == 200, await resp.text()
    assert (await classify_thing(client))["severity"] == "SEV1"
    metrics = await (await client.get("/metrics")).text()
    assert gauge(metrics, "incident_router_config_last_reload_successful") == 1

    config_path = tmp_path / "router.yaml"
    config_path.write_text(config_path.read_text() + "\nbogus_section: 1\n")
    resp = await client.post("/-/reload")
    assert resp.status == 400
    assert "bogus_section: Extra inputs are not permitted" in (await resp.json())["error"]
    metrics = await (await client.get("/metrics")).text()
    assert gauge(metrics, "incident_router_config_last_reload_successful") == 0
    assert (await classify_thing(client))["severity"] == "SEV1"  # old config keeps running


def test_sighup_reloads_a_running_router(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    port = free_port()
    config = merge(BASE_CONFIG, {"rules_dir": str(rules), "server": {"port": port,
                                                                     "host": "127.0.0.1"}})
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "router.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--config",
                                 str(path)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def rules_loaded() -> float:
            with urllib.request.urlopen(url, timeout=2) as r:
                return gauge(r.read().decode(), "incident_router_rules_loaded")

        wait_until(lambda: rules_loaded() == 0, 30, "the router to start", log)
        (rules / "10-thing.yaml").write_text(RULE)
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: rules_loaded() == 1, 15, "the SIGHUP reload", log)
        broken = "rules: [{name: broken, match: {labels: ['a=~\"(\"']}}]"
        (rules / "10-thing.yaml").write_text(broken)
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "config reload refused" in log.read_text(), 15, "the refusal", log)
        assert rules_loaded() == 1
    finally:
        proc.terminate()
        proc.wait(10)


async def test_reload_with_an_unknown_receiver_is_refused_and_the_old_config_kept(
    router_client: RouterClient, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-thing.yaml").write_text(RULE)
    client = await router_client({"rules_dir": str(rules)})
    config_path = tmp_path / "router.yaml"
    good = config_path.read_text()
    config_path.write_text(good + "severities: {SEV1: {receivers: [nope]}}\n")
    resp = await client.post("/-/reload")
    assert resp.status == 400
    assert (await resp.json())["error"] == (
        f"config reload failed, running config kept: {config_path}: "
        "severities.SEV1.receivers: unknown receiver 'nope' (known: log)")
    metrics = await (await client.get("/metrics")).text()
    assert gauge(metrics, "incident_router_config_last_reload_successful") == 0
    alert = await classify_thing(client)
    # The refused policy would have classified it to ["nope"].
    assert (alert["severity"], alert["receivers"]) == ("SEV1", [])


async def test_reload_whose_receivers_cannot_be_built_is_refused_and_the_old_kept(
    router_client: RouterClient, tmp_path: Path
) -> None:
    client = await router_client()
    config_path = tmp_path / "router.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["receivers"].append({"name": "hook", "type": "webhook", "url": "https://127.0.0.1:9/x",
                                "ca_file": str(tmp_path / "missing-ca.pem")})
    config["default_receivers"] = ["hook"]
    config_path.write_text(yaml.safe_dump(config))
    resp = await client.post("/-/reload")
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error.startswith("config reload failed, running config kept: receivers cannot be "
                            "built: ")
    assert "missing-ca.pem" in error
    metrics = await (await client.get("/metrics")).text()
    assert gauge(metrics, "incident_router_config_last_reload_successful") == 0
