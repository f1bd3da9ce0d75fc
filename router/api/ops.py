"""Operations and read side: health, readiness, metrics, reload, current alerts."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from router.api.keys import BACKEND, RUNTIME
from router.api.pagination import paginated
from router.api.webhooks import error_response, json_response
from router.model import Status


def require_api_token(request: web.Request) -> web.Response | None:
    """Writes need an API token when tokens are configured; answer 401 otherwise."""
    tokens = request.app[RUNTIME].snapshot.config.api.tokens
    if not tokens:
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and any(
        hmac.compare_digest(token.encode(), t.get_secret_value().encode()) for t in tokens
    ):
        return None
    return error_response(401, "missing or invalid API token",
                          **{"WWW-Authenticate": 'Bearer realm="incident-router"'})


async def healthz(_: web.Request) -> web.Response:
    return json_response(200, {"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if await request.app[BACKEND].ready():
        return json_response(200, {"status": "ready"})
    return json_response(503, {"status": "not ready"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[RUNTIME].metrics.registry)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def reload(request: web.Request) -> web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    ok, message = request.app[RUNTIME].reload()
    if ok:
        return json_response(200, {"status": "success", "message": message})
    return error_response(400, f"config reload failed, running config kept: {message}")


async def list_alerts(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in {s.value for s in Status}:
        return error_response(400, "status must be 'firing' or 'resolved'")
    source = request.query.get("source")
    return await paginated(request, lambda limit, cursor: request.app[BACKEND].alert_page(
        status=status, source=source, limit=limit, cursor=cursor),
        lambda a: a.model_dump(mode="json"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/-/reload", reload)
    app.router.add_get("/api/v1/alerts", list_alerts)
