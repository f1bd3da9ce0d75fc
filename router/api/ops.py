"""Operations and read side: health, readiness, metrics, reload, current alerts."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from router.api.drain import DRAIN
from router.api.keys import BACKEND, RUNTIME
from router.api.pagination import paginated
from router.api.quiet import open_incidents, quiet_reasons
from router.api.webhooks import error_response, json_response
from router.backends.pages import Page
from router.model import Alert, Status, utcnow


def require_api_token(request: web.Request) -> web.Response | None:
    """Every /api/v1 call (reads too) and reload need an API token when tokens are configured:
    401 without a valid one; a read-only token (`api.read_tokens`) may read, and gets 403 on
    anything that changes state."""
    api = request.app[RUNTIME].snapshot.config.api
    if not api.tokens:
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        sent = token.encode()
        if any(hmac.compare_digest(sent, t.get_secret_value().encode()) for t in api.tokens):
            return None
        if any(hmac.compare_digest(sent, t.get_secret_value().encode())
               for t in api.read_tokens):
            if request.method in ("GET", "HEAD"):
                return None
            return error_response(403, "this API token is read-only")
    return error_response(401, "missing or invalid API token",
                          **{"WWW-Authenticate": 'Bearer realm="incident-router"'})


async def healthz(_: web.Request) -> web.Response:
    return json_response(200, {"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[DRAIN].draining:  # first thing on SIGTERM: the load balancer moves on
        return json_response(503, {"status": "shutting down"})
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
    if (denied := require_api_token(request)) is not None:
        return denied
    status = request.query.get("status")
    if status is not None and status not in {s.value for s in Status}:
        return error_response(400, "status must be 'firing' or 'resolved'")
    source = request.query.get("source")
    backend = request.app[BACKEND]

    async def page(limit: int, cursor: str | None) -> Page[Alert]:
        found = await backend.alert_page(status=status, source=source, limit=limit,
                                         cursor=cursor)
        quiet.update(quiet_reasons(found.items, await backend.silences(), request, utcnow(),
                                   await open_incidents(backend, request)))
        return found

    quiet: dict[str, dict[str, Any]] = {}
    return await paginated(request, page,
                           lambda a: {**a.model_dump(mode="json"), "quiet": quiet.get(a.key)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/-/reload", reload)
    app.router.add_get("/api/v1/alerts", list_alerts)
