"""The fake receiver: records when each alert's notification arrives; also the fake SNS cert host.

    .venv/bin/python bench/sink.py --port 18090 [--cpu 1]

POST anything: the body is a router `webhook` receiver payload (`data.alerts[].labels`) or an
Alertmanager webhook (`alerts[].labels`); the first arrival time (time.monotonic, which is
CLOCK_MONOTONIC and so comparable across processes) of each `bench_seq` label is kept.
GET /stats returns {"notifications", "alerts", "arrivals": {bench_seq: t}}; POST /reset clears.
GET the snskit certificate path serves the local SNS signing certificate (tests/snskit).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

import payloads  # noqa: E402

from router.cli import new_event_loop  # noqa: E402
from tests import snskit  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.notifications = 0
        self.alerts = 0

    async def receive(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        body = await request.read()
        self.notifications += 1
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.Response(status=400)
        alerts = data.get("alerts")
        if alerts is None and isinstance(data.get("data"), dict):
            alerts = data["data"].get("alerts")
        for a in alerts or ():
            self.alerts += 1
            seq = (a.get("labels") or {}).get("bench_seq")
            if seq is not None and seq not in self.arrivals:
                self.arrivals[seq] = now
        return web.Response(text="ok")

    async def stats(self, _: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({
            "notifications": self.notifications, "alerts": self.alerts,
            "arrivals": self.arrivals,
        }), content_type="application/json")

    async def reset(self, _: web.Request) -> web.Response:
        self.arrivals.clear()
        self.notifications = self.alerts = 0
        return web.Response(text="ok")


def build_app(key_dir: str | None = None) -> web.Application:
    sink = Sink()
    key = payloads.sns_key(key_dir) if key_dir else snskit.default_key()

    async def cert(_: web.Request) -> web.Response:
        return web.Response(body=key.cert_pem, content_type="application/x-x509-ca-cert")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get(snskit.CERT_PATH, cert)
    app.router.add_get("/stats", sink.stats)
    app.router.add_post("/reset", sink.reset)
    app.router.add_get("/readyz", lambda _: _ok())
    app.router.add_post("/{tail:.*}", sink.receive)
    return app


async def _ok() -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int)
    parser.add_argument("--sns-key-dir", help="directory of the shared SNS signing key")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    web.run_app(build_app(args.sns_key_dir), host="127.0.0.1", port=args.port, access_log=None,
                print=lambda _: None, loop=new_event_loop("auto"))


if __name__ == "__main__":
    main()
