"""A real router process for the console's browser tests, a webhook consumer that can refuse,
and the system Chromium driven by Selenium through the system chromedriver (never a download).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.procs import free_port, http_ok, wait_until

ROOT = Path(__file__).resolve().parents[2]
WRITE_TOKEN = "console-rw-token-0123456789"
READ_TOKEN = "console-ro-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

RULES = """
rules:
  - name: checkout-down
    description: Checkout answers no requests.
    match:
      labels: ['alertname="CheckoutDown"']
    set:
      severity: SEV1
      team: payments
      service: checkout
      runbook_url: https://runbooks.example.com/checkout-down
      receivers: [log]
  - name: disk-full-hooks
    match:
      labels: ['alertname="DiskFull"']
    set:
      severity: SEV1
      team: infra
      service: storage
      receivers: [hooks]
"""

ONCALL = yaml.safe_load("""
schedules:
  - name: payments-primary
    rotation: weekly
    start: "2026-01-05T09:00"
    users: [alice, bob, carol]
escalation_policies:
  - name: payments
    levels:
      - targets: [{schedule: payments-primary}]
        delay: 15m
      - targets: [{user: cto}]
services:
  checkout: {escalation_policy: payments, team: payments}
""")


class _Hook(BaseHTTPRequestHandler):
    server: HookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.server.accept.is_set():
            self.server.received.append(json.loads(body))
            self.send_response(200)
        else:
            self.send_response(400)  # permanent: the router dead-letters it
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


class HookServer(ThreadingHTTPServer):
    """A webhook consumer on 127.0.0.1 that accepts (200) or refuses (400) on demand."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.accept = threading.Event()
        self.accept.set()
        self.received: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


@dataclass
class Router:
    base: str
    hook: HookServer
    log: Path
    shots: Path
    posted: list[str] = field(default_factory=list)

    def api(self, method: str, path: str, body: object | None = None,
            token: str = WRITE_TOKEN) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def fire(self, name: str, **labels: str) -> None:
        """Post one firing alert as Alertmanager's webhook does."""
        alert = {"status": "firing", "labels": {"alertname": name, **labels},
                 "annotations": {"summary": f"{name} on {labels.get('instance', 'all')}"},
                 "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                 "endsAt": "0001-01-01T00:00:00Z",
                 "fingerprint": f"{abs(hash((name, *sorted(labels.items())))):016x}"[:16]}
        payload = {"version": "4", "status": "firing", "receiver": "router",
                   "groupKey": f'{{}}:{{alertname="{name}"}}', "alerts": [alert]}
        status, body = self.api("POST", "/webhooks/alertmanager", payload)
        assert status == 200, body

    def declare(self, title: str, severity: str = "SEV2") -> str:
        status, body = self.api("POST", "/api/v1/incidents",
                                {"title": title, "severity": severity, "commander": "alice",
                                 "service": "checkout"})
        assert status == 201, body
        return str(body["data"]["id"])

    def incident(self, ident: str) -> dict[str, Any]:
        status, body = self.api("GET", f"/api/v1/incidents/{ident}")
        assert status == 200, body
        data: dict[str, Any] = body["data"]
        return data


@contextlib.contextmanager
def router(workdir: Path, backend: dict[str, Any] | None = None, rules: str = RULES,
           ready_within: float = 20) -> Iterator[Router]:
    """A router process on the embedded backend in `workdir`, or on `backend` (e.g. Kafka)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules").mkdir(exist_ok=True)
    (workdir / "rules" / "console.yaml").write_text(rules)
    hook = HookServer()
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    port = free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "backend": backend or {"type": "embedded", "path": str(workdir / "router.db")},
        "rules_dir": str(workdir / "rules"),
        "receivers": [{"name": "log", "type": "log"},
                      {"name": "hooks", "type": "webhook", "url": hook.url}],
        "default_receivers": ["log"],
        "api": {"tokens": [WRITE_TOKEN], "read_tokens": [READ_TOKEN]},
        "oncall": ONCALL,
    }
    path = workdir / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    log = workdir / "router.log"
    exe = Path(sys.executable).with_name("incident-router")
    with log.open("wb") as out:
        proc = subprocess.Popen([str(exe), "serve", "--config", str(path)], stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(base + "/readyz"), ready_within, "the router to be ready",
                   log)
        shots = Path(os.environ.get("IR_SCREENSHOTS") or workdir / "screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        yield Router(base, hook, log, shots)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        hook.shutdown()
        hook.server_close()


def chromium(width: int = 1280, height: int = 900, phone: bool = False) -> Any:
    """Headless Chromium from Debian's packages via its chromedriver; Selenium Manager is told
    to stay offline and is never needed (both paths are given)."""
    for need in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(need) is None:
            pytest.fail(f"{need} is not installed: run `make system-deps` (Debian packages "
                        "chromium and chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", f"--window-size={width},{height}",
                "--force-color-profile=srgb", "--hide-scrollbars"):
        options.add_argument(arg)
    if phone:  # a phone's viewport and pixel ratio (a desktop window cannot be this narrow)
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0}})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def full_page_screenshot(driver: Any, path: Path) -> None:
    """The whole page, not only the viewport (Chromium's DevTools screenshot)."""
    import base64

    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
