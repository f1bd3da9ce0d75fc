"""What every request shares: its id, its body read deadline, and the log line when refused.

- Request id: a sane `X-Request-Id` from the client (a proxy's, Alertmanager's) is kept,
  otherwise one is generated; it is echoed in the response header and in log fields.
- Body deadline: the listener closes a connection whose request line and headers do not arrive
  within `server.read_timeout_seconds` (aiohttp's keep-alive timer, router.api.listener); here a
  body that has not fully arrived that long after its headers fails every read with
  `BodyTimeout`, answered 408 on a closed connection.
- Refusals: one concise line per refused request (no traceback), with structured fields
  `source`, `status`, `reason`, `request_id`, `remote` and nothing the sender wrote besides its
  request id, so secrets or URLs in a body cannot reach the log.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from router.api.drain import refusal
from router.api.keys import RUNTIME

log = logging.getLogger("router.api.requests")

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)
_LOGGED = web.RequestKey("refusal_logged", bool)
# Anything else (too long, spaces, newlines) is replaced: it goes into logs and headers.
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Generated ids: 32 hex digits, as uuid4().hex, unique without a getrandom() per request (the
# syscall cost 6 µs of the router's ~100 µs per 1-alert request): a random prefix per process
# and a counter. An id correlates log lines; it grants nothing, so it need not be unguessable.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


class BodyTimeout(TimeoutError):
    """The request body did not arrive in time. A TimeoutError, so that aiohttp's lingering
    read of an unread body stops at once and closes the connection quietly."""


def request_id(request: web.Request) -> str:
    return request.get(REQUEST_ID) or ""


def source_of(request: web.Request) -> str:
    """A fixed word for the log's `source` field: the intake source, or the API family."""
    parts = request.path.strip("/").split("/")
    if parts[0] == "webhooks" and len(parts) > 1:
        return parts[1][:32]
    return "slack" if parts[0] == "slack" else "api"


def log_refused(request: web.Request, status: int, reason: str,
                source: str | None = None) -> None:
    """The one line for a refused request: WARNING for credentials, INFO for other input."""
    fields = {
        "source": source or source_of(request),
        "status": status,
        "reason": reason,
        "request_id": request_id(request),
        "remote": request.remote or "",
    }
    level = logging.WARNING if status in (401, 403) else logging.INFO
    log.log(level, "request refused: %s", " ".join(f"{k}={v}" for k, v in fields.items()),
            extra=fields)
    request[_LOGGED] = True


def _expire(request: web.Request, seconds: float) -> None:
    if not request.content.is_eof():
        request.content.set_exception(BodyTimeout(
            f"request body not received within {seconds:g} s (server.read_timeout_seconds)"))


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The app's one middleware (each layer costs every request): the request id, the body
    deadline, the refusal while draining (router.api.drain) and the refusal log line."""
    given = request.headers.get(REQUEST_ID_HEADER)
    rid = given if given and _SANE_ID.fullmatch(given) else new_request_id()
    request[REQUEST_ID] = rid
    deadline = None
    try:
        if (refused := refusal(request)) is not None:
            response: web.StreamResponse = refused
        else:
            if not request.content.is_eof():  # a small body has usually arrived already
                seconds = request.app[RUNTIME].snapshot.config.server.read_timeout_seconds
                deadline = asyncio.get_running_loop().call_later(seconds, _expire, request,
                                                                 seconds)
            response = await handler(request)
    except BodyTimeout as exc:
        # The same JSON error shape as every other refusal (router.api.webhooks).
        response = web.Response(status=408, content_type="application/json",
                                body=orjson.dumps({"status": "error", "error": str(exc)}))
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = rid
        raise
    finally:
        if deadline is not None:
            deadline.cancel()
    if not response.prepared:  # a streamed response (already sent) keeps its headers
        response.headers[REQUEST_ID_HEADER] = rid
    if response.status == 408:
        response.force_close()
    if response.status in (401, 403, 408) and not request.get(_LOGGED):
        reason = {401: "unauthorized", 403: "forbidden"}.get(response.status, "read_timeout")
        log_refused(request, response.status, reason)
    return response
