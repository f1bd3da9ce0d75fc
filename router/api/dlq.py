"""Dead letters over HTTP: `GET /api/v1/dlq[?receiver=]`, `POST /api/v1/dlq/replay`."""

from __future__ import annotations

from aiohttp import web

from router.api.keys import BACKEND, DISPATCHER
from router.api.ops import require_api_token
from router.api.webhooks import error_response, json_response


async def list_dead_letters(request: web.Request) -> web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    items = await request.app[BACKEND].outbox.list(receiver=request.query.get("receiver"))
    data = [
        {"id": d.id, "receiver": d.receiver, "reason": d.reason,
         "failed_at": d.failed_at.isoformat(), "kind": d.notification.kind.value,
         "group_key": d.notification.group_key, "title": d.notification.title}
        for d in items
    ]
    return json_response(200, {"status": "success", "data": data})


async def replay(request: web.Request) -> web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return error_response(400, "malformed JSON body")
    if not isinstance(body, dict) or not set(body) <= {"id", "receiver"}:
        return error_response(422, "body must be an object with optional 'id' or 'receiver'")
    ident, receiver = body.get("id"), body.get("receiver")
    if not all(v is None or isinstance(v, str) for v in (ident, receiver)):
        return error_response(422, "'id' and 'receiver' must be strings")
    count = await request.app[DISPATCHER].replay(id=ident, receiver=receiver)
    return json_response(200, {"status": "success", "replayed": count})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/dlq", list_dead_letters)
    app.router.add_post("/api/v1/dlq/replay", replay)
