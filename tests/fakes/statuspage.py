"""Statuspage REST v1: incidents create (201) / update (200) / unresolved list, components
map inside the incident; `Authorization: OAuth <key>`; throttling answers 420 (scripted).
The incident's postmortem: `PUT .../incidents/{id}/postmortem` (`{"postmortem": {"body_draft":
...}}`) saves the draft, `PUT .../postmortem/publish` (`notify_subscribers`, `notify_twitter`)
publishes it (422 without a draft).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeVendor

STATUSES = {"investigating", "identified", "monitoring", "resolved"}


class FakeStatuspage(FakeVendor):
    def __init__(self, api_key: str, page_id: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.page_id = page_id
        self.incidents: dict[str, dict[str, Any]] = {}
        self.components: dict[str, str] = {}

    def app(self) -> web.Application:
        app = web.Application()
        base = f"/v1/pages/{self.page_id}"
        app.router.add_post(base + "/incidents", self.wrap(self.create))
        app.router.add_get(base + "/incidents/unresolved", self.wrap(self.unresolved))
        app.router.add_patch(base + "/incidents/{id}", self.wrap(self.patch))
        app.router.add_put(base + "/incidents/{id}/postmortem", self.wrap(self.postmortem))
        app.router.add_put(base + "/incidents/{id}/postmortem/publish",
                           self.wrap(self.publish_postmortem))
        return app

    def _auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"OAuth {self.api_key}":
            return web.json_response({"error": "Could not authenticate"}, status=401)
        return None

    def _apply(self, incident: dict[str, Any], change: dict[str, Any]) -> None:
        for key in ("name", "status", "impact_override", "metadata", "component_ids"):
            if key in change:
                incident[key] = change[key]
        if "body" in change:
            incident["incident_updates"].insert(0, {"status": incident["status"],
                                                    "body": change["body"]})
        self.components.update(change.get("components") or {})

    async def create(self, request: web.Request) -> web.Response:
        if (err := self._auth(request)) is not None:
            return err
        change = json.loads(await request.read()).get("incident") or {}
        if not change.get("name") or change.get("status") not in STATUSES:
            return web.json_response({"error": "name and status are required"}, status=422)
        incident: dict[str, Any] = {"id": uuid.uuid4().hex[:12], "incident_updates": []}
        self._apply(incident, change)
        self.incidents[incident["id"]] = incident
        return web.json_response(incident, status=201)

    async def unresolved(self, request: web.Request) -> web.Response:
        if (err := self._auth(request)) is not None:
            return err
        return web.json_response(
            [i for i in self.incidents.values() if i["status"] != "resolved"]
        )

    async def patch(self, request: web.Request) -> web.Response:
        if (err := self._auth(request)) is not None:
            return err
        incident = self.incidents.get(request.match_info["id"])
        if incident is None:
            return web.json_response({"error": "not found"}, status=404)
        change = json.loads(await request.read()).get("incident") or {}
        if "status" in change and change["status"] not in STATUSES:
            return web.json_response({"error": "invalid status"}, status=422)
        self._apply(incident, change)
        return web.json_response(incident)

    async def postmortem(self, request: web.Request) -> web.Response:
        if (err := self._auth(request)) is not None:
            return err
        incident = self.incidents.get(request.match_info["id"])
        if incident is None:
            return web.json_response({"error": "not found"}, status=404)
        draft = (json.loads(await request.read()).get("postmortem") or {}).get("body_draft")
        if not isinstance(draft, str) or not draft:
            return web.json_response({"error": "body_draft is required"}, status=422)
        pm = incident.setdefault("postmortem", {"published_at": None})
        pm["body_draft"] = draft
        return web.json_response({**pm, "preview_key": "pv1"})

    async def publish_postmortem(self, request: web.Request) -> web.Response:
        if (err := self._auth(request)) is not None:
            return err
        incident = self.incidents.get(request.match_info["id"])
        if incident is None:
            return web.json_response({"error": "not found"}, status=404)
        pm = incident.get("postmortem")
        if not pm or not pm.get("body_draft"):
            return web.json_response({"error": "no postmortem draft"}, status=422)
        options = json.loads(await request.read() or b"{}").get("postmortem") or {}
        pm.update(body=pm["body_draft"], published_at="now",
                  notify_subscribers=bool(options.get("notify_subscribers")),
                  notify_twitter=bool(options.get("notify_twitter")))
        incident["postmortem_body"] = pm["body"]
        return web.json_response(pm)
