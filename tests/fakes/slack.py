"""Slack: an incoming webhook (200 "ok" / 4xx text codes) and the Web API (HTTP 200 with
ok:true|false) for chat.postMessage and chat.update, with a per-channel per-second limit
answered by 429 + Retry-After.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeVendor, json_response

WEBHOOK_PATH = "/services/T000/B000/XXXXSECRETXXXX"


class FakeSlack(FakeVendor):
    def __init__(self, bot_token: str = "", per_second: int = 1_000_000) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.per_second = per_second
        self.windows: Counter[tuple[str, int]] = Counter()  # (channel, second) -> posts
        self.rate_limited = 0
        self.messages: list[dict[str, Any]] = []  # accepted posts, in order
        self.updates: list[dict[str, Any]] = []
        self._ts = 1_700_000_000_000_100

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(WEBHOOK_PATH, self.wrap(self.webhook))
        app.router.add_post("/api/chat.postMessage", self.wrap(self.post_message))
        app.router.add_post("/api/chat.update", self.wrap(self.update))
        return app

    def _over_limit(self, channel: str) -> bool:
        window = (channel, int(time.time()))
        self.windows[window] += 1
        if self.windows[window] > self.per_second:
            self.rate_limited += 1
            return True
        return False

    def _next_ts(self) -> str:
        self._ts += 100
        return f"{self._ts // 1_000_000}.{self._ts % 1_000_000:06d}"

    async def webhook(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not body.get("text") and not body.get("blocks") and not body.get("attachments"):
            return web.Response(status=400, text="no_text")
        if self._over_limit("webhook"):
            return web.Response(status=429, text="rate_limited", headers={"Retry-After": "1"})
        self.messages.append(body)
        return web.Response(status=200, text="ok")

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return json_response(200, {"ok": False, "error": "invalid_auth"})
        return None

    async def post_message(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        body = json.loads(await request.read())
        channel = body.get("channel")
        if not channel:
            return json_response(200, {"ok": False, "error": "channel_not_found"})
        if self._over_limit(channel):
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": "1"})
        ts = self._next_ts()
        self.messages.append({**body, "ts": ts})
        return json_response(200, {"ok": True, "channel": channel, "ts": ts,
                                   "message": {"text": body.get("text"), "ts": ts}})

    async def update(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        body = json.loads(await request.read())
        if not any(m["ts"] == body.get("ts") for m in self.messages):
            return json_response(200, {"ok": False, "error": "message_not_found"})
        self.updates.append(body)
        return json_response(200, {"ok": True, "channel": body["channel"], "ts": body["ts"],
                                   "text": body.get("text")})
