"""Opsgenie Alert API v2 (and JSM Operations' integration API, same model under a prefix).

POST {prefix} creates (alias dedups while open), POST {prefix}/{alias}/acknowledge|close|notes
with identifierType=alias; `Authorization: GenieKey <key>`; answers 202 with a requestId.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeVendor, json_response


class FakeAlertApi(FakeVendor):
    def __init__(self, api_key: str, prefix: str = "/v2/alerts") -> None:
        super().__init__()
        self.api_key = api_key
        self.prefix = prefix
        self.alerts: dict[str, dict[str, Any]] = {}  # alias -> alert
        self.actions: list[tuple[str, str]] = []  # (action, alias) accepted, in order

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.prefix, self.wrap(self.create))
        app.router.add_post(self.prefix + "/{identifier}/{action}", self.wrap(self.act))
        return app

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"GenieKey {self.api_key}"

    def _accepted(self) -> web.Response:
        return json_response(202, {"result": "Request will be processed", "took": 0.01,
                                   "requestId": str(uuid.uuid4())})

    async def create(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return json_response(401, {"message": "Could not authenticate", "took": 0.0})
        body = json.loads(await request.read())
        message = body.get("message")
        if not message or len(message) > 130:
            return json_response(422, {"message": "Request body is not processable",
                                       "errors": {"message": "invalid"}})
        alias = body.get("alias", "")
        alert = self.alerts.get(alias)
        if alert is not None and alert["status"] != "closed":
            alert["count"] += 1
        else:
            self.alerts[alias] = {"status": "open", "count": 1, "body": body, "notes": []}
        self.actions.append(("create", alias))
        return self._accepted()

    async def act(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return json_response(401, {"message": "Could not authenticate", "took": 0.0})
        if request.query.get("identifierType") != "alias":
            return json_response(404, {"message": "Alert does not exist"})
        alias = request.match_info["identifier"]
        action = request.match_info["action"]
        if action not in ("acknowledge", "close", "notes"):
            return json_response(404, {"message": "Not found"})
        alert = self.alerts.get(alias)
        if alert is not None:
            if action == "acknowledge":
                alert["status"] = "acked"
            elif action == "close":
                alert["status"] = "closed"
            else:
                alert["notes"].append(json.loads(await request.read()).get("note"))
        self.actions.append((action, alias))
        return self._accepted()
