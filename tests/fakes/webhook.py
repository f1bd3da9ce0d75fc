"""A Standard Webhooks consumer: verifies webhook-id/-timestamp/-signature like the reference
library (v1 HMAC-SHA256, key = base64 after `whsec_`, ±5 min tolerance) and dedupes on id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeVendor

PATH = "/hooks/incident-router"


class FakeWebhookConsumer(FakeVendor):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.seen_ids: list[str] = []
        self.events: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH, self.wrap(self.receive))
        return app

    def verify(self, msg_id: str, ts: str, body: bytes, header: str) -> bool:
        expected = base64.b64encode(
            hmac.new(self.key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        ).decode()
        for candidate in header.split(" "):
            version, _, sig = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(sig, expected):
                return True
        return False

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        ts = request.headers.get("webhook-timestamp", "")
        sig = request.headers.get("webhook-signature", "")
        if not msg_id or not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return web.Response(status=400, text="bad headers")
        if not self.verify(msg_id, ts, body, sig):
            return web.Response(status=401, text="bad signature")
        if msg_id not in self.seen_ids:  # idempotent on webhook-id
            self.seen_ids.append(msg_id)
            self.events.append(await request.json())
        return web.Response(status=204)
