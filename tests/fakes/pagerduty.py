"""PagerDuty Events API v2: POST /v2/enqueue, 202 on success, 400 with errors[] when invalid."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeVendor, json_response

SEVERITIES = {"critical", "error", "warning", "info"}


class FakePagerDuty(FakeVendor):
    def __init__(self, routing_key: str) -> None:
        super().__init__()
        self.routing_key = routing_key
        self.accepted: list[dict[str, Any]] = []  # events PagerDuty took, in order

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self.wrap(self.enqueue))
        return app

    async def enqueue(self, request: web.Request) -> web.Response:
        try:
            event = json.loads(await request.read())
        except ValueError:
            return json_response(400, {"status": "invalid event", "message": "bad JSON",
                                       "errors": ["Malformed JSON"]})
        errors = self.validate(event)
        if errors:
            return json_response(400, {"status": "invalid event",
                                       "message": "Event object is invalid", "errors": errors})
        dedup = event.get("dedup_key") or uuid.uuid4().hex
        self.accepted.append(event)
        return json_response(202, {"status": "success", "message": "Event processed",
                                   "dedup_key": dedup})

    def validate(self, event: dict[str, Any]) -> list[str]:
        errors = []
        if event.get("routing_key") != self.routing_key:
            errors.append("'routing_key' is invalid")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid")
        if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
            errors.append("'dedup_key' is required")
        if len(event.get("dedup_key", "")) > 255:
            errors.append("'dedup_key' is too long")
        if action == "trigger":
            p = event.get("payload") or {}
            if not p.get("summary") or len(p["summary"]) > 1024:
                errors.append("'payload.summary' is invalid")
            if not p.get("source"):
                errors.append("'payload.source' is missing")
            if p.get("severity") not in SEVERITIES:
                errors.append("'payload.severity' is invalid")
        return errors
