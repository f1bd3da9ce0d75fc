"""Teams Workflows trigger: POST .../paths/invoke?...&sig=<SAS>, 202 Accepted, 401 on bad sig,
400 when the body is not a message with an Adaptive Card attachment.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeVendor

PATH = "/workflows/abc123/triggers/manual/paths/invoke"


class FakeTeams(FakeVendor):
    def __init__(self, sig: str) -> None:
        super().__init__()
        self.sig = sig
        self.cards: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH, self.wrap(self.invoke))
        return app

    async def invoke(self, request: web.Request) -> web.Response:
        if request.query.get("sig") != self.sig:
            return web.json_response({"error": {"code": "DirectApiAuthorizationRequired"}},
                                     status=401)
        body = json.loads(await request.read())
        attachments = body.get("attachments") or []
        if body.get("type") != "message" or not attachments or attachments[0].get(
            "contentType") != "application/vnd.microsoft.card.adaptive":
            return web.json_response({"error": {"code": "InvalidRequestContent"}}, status=400)
        self.cards.append(attachments[0]["content"])
        return web.Response(status=202)
