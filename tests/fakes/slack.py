"""Slack: an incoming webhook (200 "ok" / 4xx text codes) and the Web API (HTTP 200 with
ok:true|false) for chat.postMessage and chat.update, with a per-channel per-second limit
answered by 429 + Retry-After; and the incident-channel methods as documented on
api.slack.com: conversations.create (`name_taken`, `invalid_name_specials`,
`invalid_name_maxlength`), conversations.invite (`already_in_channel`, `is_archived`,
`not_in_channel`, `user_not_found`), users.lookupByEmail (`users_not_found`), pins.add
(`already_pinned`, `message_not_found`), conversations.archive (`already_archived`),
conversations.history; chat.postMessage into an archived channel is `is_archived`. Arguments
come as JSON or as a form, as Slack accepts both. `fail(429, headers={"Retry-After": "1"})`
scripts a rate limit on the next call.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.base import FakeVendor, json_response

WEBHOOK_PATH = "/services/T000/B000/XXXXSECRETXXXX"
BOT_USER = "UBOT0ROUTER"
_NAME = re.compile(r"[a-z0-9_-]+")


@dataclass
class Channel:
    id: str
    name: str
    private: bool = False
    archived: bool = False
    members: set[str] = field(default_factory=lambda: {BOT_USER})
    pins: list[str] = field(default_factory=list)


async def arguments(request: web.Request) -> dict[str, Any]:
    """A Web API call's arguments: JSON body or form (Slack accepts both)."""
    raw = await request.read()
    if request.content_type == "application/json":
        data = json.loads(raw or b"{}")
        return data if isinstance(data, dict) else {}
    return dict(parse_qsl(raw.decode()))


def error(name: str) -> web.Response:
    return json_response(200, {"ok": False, "error": name})


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
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, str] = {}  # e-mail -> user id (users.lookupByEmail)
        self.known_users: set[str] = set()  # ids that exist besides those of `users`
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (method, arguments), accepted
        self._limits: dict[str, list[int]] = {}  # method -> Retry-After of the next calls

    def limit(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """The next `times` calls of `method` get HTTP 429 with Retry-After (Slack's tiers)."""
        self._limits.setdefault(method, []).extend([retry_after] * times)

    def add_user(self, user_id: str, email: str | None = None) -> None:
        self.known_users.add(user_id)
        if email is not None:
            self.users[email] = user_id

    def channel_named(self, name: str) -> Channel | None:
        return next((c for c in self.channels.values() if c.name == name), None)

    def posts_in(self, channel_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("channel") == channel_id]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(WEBHOOK_PATH, self.wrap(self.webhook))
        app.router.add_post("/api/chat.postMessage", self.wrap(self.post_message))
        app.router.add_post("/api/chat.update", self.wrap(self.update))
        for method, handler in (("conversations.create", self.create),
                                ("conversations.invite", self.invite),
                                ("users.lookupByEmail", self.lookup_by_email),
                                ("pins.add", self.pin),
                                ("conversations.archive", self.archive),
                                ("conversations.history", self.history)):
            app.router.add_post(f"/api/{method}", self.wrap(handler))
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
        body = await arguments(request)
        channel = body.get("channel")
        if not channel:
            return json_response(200, {"ok": False, "error": "channel_not_found"})
        known = self.channels.get(channel)
        if known is not None and known.archived:
            return error("is_archived")
        if known is not None and BOT_USER not in known.members:
            return error("not_in_channel")
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
        body = await arguments(request)
        if not any(m["ts"] == body.get("ts") for m in self.messages):
            return json_response(200, {"ok": False, "error": "message_not_found"})
        self.updates.append(body)
        return json_response(200, {"ok": True, "channel": body["channel"], "ts": body["ts"],
                                   "text": body.get("text")})

    # --- incident channels --------------------------------------------------------------------

    async def _accepted(self, request: web.Request,
                        method: str) -> dict[str, Any] | web.Response:
        """The call's arguments, or the answer to a bad token or a scripted rate limit."""
        if (err := self._auth_error(request)) is not None:
            return err
        pending = self._limits.get(method)
        if pending:
            wait = pending.pop(0)
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(wait)})
        args = await arguments(request)
        self.calls.append((method, args))
        return args

    async def _on_channel(self, request: web.Request, method: str, *, member: bool = True,
                          ) -> tuple[dict[str, Any], Channel] | web.Response:
        """A channel method's arguments and channel, or its error answer."""
        args = await self._accepted(request, method)
        if isinstance(args, web.Response):
            return args
        channel = self.channels.get(str(args.get("channel") or ""))
        if channel is None:
            return error("channel_not_found")
        if member and BOT_USER not in channel.members:
            return error("not_in_channel")
        return args, channel

    async def create(self, request: web.Request) -> web.Response:
        args = await self._accepted(request, "conversations.create")
        if isinstance(args, web.Response):
            return args
        name = str(args.get("name") or "")
        if not name:
            return error("invalid_name_required")
        if len(name) > 80:
            return error("invalid_name_maxlength")
        if not _NAME.fullmatch(name):
            return error("invalid_name_specials")
        if self.channel_named(name) is not None:
            return error("name_taken")
        channel = Channel(f"C{len(self.channels) + 1:08d}", name,
                          private=str(args.get("is_private")).lower() == "true")
        self.channels[channel.id] = channel
        return json_response(200, {"ok": True, "channel": {
            "id": channel.id, "name": name, "is_channel": True, "is_private": channel.private,
            "is_archived": False, "is_member": True, "creator": BOT_USER,
            "created": int(time.time()), "name_normalized": name}})

    async def invite(self, request: web.Request) -> web.Response:
        found = await self._on_channel(request, "conversations.invite", member=False)
        if isinstance(found, web.Response):
            return found
        args, channel = found
        if channel.archived:
            return error("is_archived")
        if BOT_USER not in channel.members:
            return error("not_in_channel")
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if not users:
            return error("no_user")
        for user in users:
            if user == BOT_USER:
                return error("cant_invite_self")
            if user not in self.known_users:
                return error("user_not_found")
            if user in channel.members:
                return error("already_in_channel")
        channel.members.update(users)
        return json_response(200, {"ok": True, "channel": {"id": channel.id,
                                                           "name": channel.name}})

    async def lookup_by_email(self, request: web.Request) -> web.Response:
        args = await self._accepted(request, "users.lookupByEmail")
        if isinstance(args, web.Response):
            return args
        user = self.users.get(str(args.get("email") or ""))
        if user is None:
            return error("users_not_found")
        return json_response(200, {"ok": True, "user": {"id": user, "deleted": False,
                                                        "profile": {"email": args["email"]}}})

    async def pin(self, request: web.Request) -> web.Response:
        found = await self._on_channel(request, "pins.add")
        if isinstance(found, web.Response):
            return found
        args, channel = found
        ts = str(args.get("timestamp") or "")
        if not any(m["ts"] == ts and m.get("channel") == channel.id for m in self.messages):
            return error("message_not_found")
        if ts in channel.pins:
            return error("already_pinned")
        channel.pins.append(ts)
        return json_response(200, {"ok": True})

    async def archive(self, request: web.Request) -> web.Response:
        found = await self._on_channel(request, "conversations.archive", member=False)
        if isinstance(found, web.Response):
            return found
        _, channel = found
        if channel.archived:
            return error("already_archived")
        if BOT_USER not in channel.members:
            return error("not_in_channel")
        channel.archived = True
        return json_response(200, {"ok": True})

    async def history(self, request: web.Request) -> web.Response:
        """`latest` + `inclusive` + `limit=1` finds one message by its ts, as the router asks."""
        found = await self._on_channel(request, "conversations.history")
        if isinstance(found, web.Response):
            return found
        args, channel = found
        latest = float(args.get("latest") or "inf")
        inclusive = str(args.get("inclusive")).lower() in ("true", "1")
        seen = [m for m in reversed(self.messages) if m.get("channel") == channel.id
                and (float(m["ts"]) < latest or (inclusive and float(m["ts"]) == latest))]
        limit = int(args.get("limit") or 100)
        return json_response(200, {"ok": True, "has_more": len(seen) > limit, "messages": [
            {"type": "message", "ts": m["ts"], "text": m.get("text", ""),
             "user": m.get("user", BOT_USER)} for m in seen[:limit]]})

    def say(self, channel_id: str, text: str, user: str) -> str:
        """A person's message in a channel (as if typed in Slack); its ts."""
        ts = self._next_ts()
        self.messages.append({"channel": channel_id, "text": text, "user": user, "ts": ts})
        return ts
