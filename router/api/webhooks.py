"""Intake: authenticate, read within the size limit, parse, classify, append durably, answer.

The answer is 2xx only after the log has the alerts; 503 with Retry-After when it cannot take
them (Alertmanager and SNS retry 5xx, and drop on 4xx); 4xx with a message for bad input.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime

import orjson
from aiohttp import web

from router.api.auth import check_auth, www_authenticate
from router.api.keys import BACKEND, RUNTIME, SNS_VERIFIER
from router.api.requests import BodyTimeout, log_refused, request_id
from router.backends.base import LogEvent, LogUnavailable
from router.backends.filters import AlertQuery
from router.config import Auth
from router.engine.noise import heartbeat_of, inhibitor_commands
from router.metrics import IntakeMetrics
from router.model import Alert, AlertEvent, Status, decided_whole, utcnow
from router.sources.alertmanager import parse_alertmanager
from router.sources.base import Rejected, check_alert_limits
from router.sources.cloudwatch import handle_sns, parse_eventbridge
from router.sources.generic import parse_generic
from router.sources.sns import SnsUnavailable

log = logging.getLogger(__name__)

Parser = Callable[[web.Request, bytes, datetime], Awaitable[list[Alert]]]


def json_response(status: int, body: dict[str, object], **headers: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def error_response(status: int, message: str, **headers: str) -> web.Response:
    return json_response(status, {"status": "error", "error": message}, **headers)


def unavailable(exc: LogUnavailable) -> web.Response:
    """503: retry later. Says whether the alerts may have been stored all the same (a Kafka
    produce that timed out), so nobody reads the answer as "lost": either way a retry is safe,
    the engine recognises a stored one as a duplicate."""
    if exc.maybe_stored:
        message = ("the alert log did not confirm the alerts in time; they may still have been "
                   "stored and then are delivered once: retry, a repeat is recognised")
    else:
        message = "the alert log cannot take alerts now, nothing was stored: retry later"
    return json_response(503, {"status": "error", "error": message,
                               "stored": "unknown" if exc.maybe_stored else False},
                         **{"Retry-After": "5"})


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body within `limit` bytes (413) and the read deadline (408, router.api.requests)."""
    try:
        return await _read_body(request, limit)
    except BodyTimeout as exc:
        raise Rejected(408, "read_timeout", str(exc)) from None


async def _read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None:
        if length > limit:
            raise Rejected(413, "too_large", f"body of {length} bytes exceeds the limit of "
                           f"{limit} bytes")
        return await request.read()  # the declared length is all aiohttp will read
    body = bytearray()  # chunked: count as it comes
    async for chunk in request.content.iter_chunked(65536):
        body += chunk
        if len(body) > limit:
            raise Rejected(413, "too_large", f"body exceeds the limit of {limit} bytes")
    return bytes(body)


class _Series:
    """The labelled series of one source that every accepted request touches, looked up
    once: prometheus_client's `labels()` takes a lock and builds a key, ~1-2 us a call."""

    def __init__(self, metrics: IntakeMetrics, source: str) -> None:
        self.received = metrics.received.labels(source)
        self.ok_seconds = metrics.request_seconds.labels(source, "2xx")


_SERIES: weakref.WeakKeyDictionary[IntakeMetrics, dict[str, _Series]] = (
    weakref.WeakKeyDictionary())


def _series(metrics: IntakeMetrics, source: str) -> _Series:
    by_source = _SERIES.get(metrics)
    if by_source is None:
        by_source = _SERIES[metrics] = {}
    series = by_source.get(source)
    if series is None:
        series = by_source[source] = _Series(metrics, source)
    return series


def _accepted(count: int) -> web.Response:
    # The body orjson gives {"status": "success", "accepted": count}, without the dict.
    return web.Response(status=200, body=b'{"status":"success","accepted":%d}' % count,
                        content_type="application/json")


async def intake(request: web.Request, source: str, auth: Auth, enabled: bool,
                 parse: Parser) -> web.Response:
    metrics = request.app[RUNTIME].metrics
    series = _series(metrics, source)
    started = time.perf_counter()
    response = await _intake(request, source, auth, enabled, parse, series)
    seconds = time.perf_counter() - started
    if response.status == 200:
        series.ok_seconds.observe(seconds)
    else:
        metrics.request_seconds.labels(source, f"{response.status // 100}xx").observe(seconds)
    return response


async def _intake(request: web.Request, source: str, auth: Auth, enabled: bool,
                  parse: Parser, series: _Series) -> web.Response:
    runtime = request.app[RUNTIME]
    snapshot = runtime.snapshot
    metrics = runtime.metrics
    try:
        if not enabled:
            raise Rejected(404, "disabled", f"the {source} source is disabled")
        check_auth(auth, request.headers)
        server = snapshot.config.server
        body = await read_body(request, server.max_body_bytes)
        alerts = await parse(request, body, utcnow())
        check_alert_limits(alerts, max_alerts=server.max_alerts_per_request,
                           max_labels=server.max_labels_per_alert,
                           max_bytes=server.max_label_bytes)
        if server.max_active_alerts and any(a.status is Status.FIRING for a in alerts):
            await check_active(request, server.max_active_alerts)
    except Rejected as exc:
        metrics.rejected.labels(source, exc.reason).inc()
        log_refused(request, exc.status, exc.reason, source)
        headers = {}
        if exc.status == 401 and (challenge := www_authenticate(auth)):
            headers["WWW-Authenticate"] = challenge
        return error_response(exc.status, exc.message, **headers)
    except SnsUnavailable as exc:
        metrics.unavailable.labels(source).inc()
        log.warning("SNS verification could not complete: %s", exc,
                    extra={"source": source, "request_id": request_id(request)})
        return error_response(503, "SNS verification could not complete, retry later",
                              **{"Retry-After": "5"})

    classify = snapshot.rules.classify
    accepted = [AlertEvent.of(classify(a)) for a in alerts]
    events: list[LogEvent] = list(accepted)
    if snapshot.config.heartbeats:
        # A Watchdog-like alert is its heartbeat's beat, not an alert to route.
        events = [heartbeat_of(e, snapshot.config.heartbeats) or e for e in accepted]
    rules = snapshot.config.inhibit_rules
    if rules and accepted:
        # Alerts that may inhibit others reach every engine first (noise commands).
        events = [*inhibitor_commands((e.alert for e in accepted), rules), *events]
    if events:
        try:
            # One record per group of this request: the engine decides its alerts together.
            await request.app[BACKEND].log.append(decided_whole(events))
        except LogUnavailable as exc:
            metrics.unavailable.labels(source).inc()
            log.error("intake refused %d %s alerts: %s", len(events), source, exc,
                      extra={"source": source, "request_id": request_id(request)})
            return unavailable(exc)
        series.received.inc(len(accepted))
        count_firing(request, accepted)
    return _accepted(len(accepted))


# How long a count of the firing alerts is reused (counting costs a query per request).
ACTIVE_COUNT_TTL = 1.0
_FIRING = AlertQuery(status=Status.FIRING.value)
_ACTIVE: weakref.WeakKeyDictionary[web.Application, tuple[int, float]] = (
    weakref.WeakKeyDictionary())


async def check_active(request: web.Request, cap: int) -> None:
    """Rejected(429) while the router holds `cap` firing alerts or more: a storm of new
    alerts is pushed back to its senders, which retry; resolutions are never refused."""
    loop = asyncio.get_running_loop()
    cached = _ACTIVE.get(request.app)
    if cached is None or loop.time() - cached[1] > ACTIVE_COUNT_TTL:
        try:
            # An index-only count: a page's total (alert_page) also sorted every firing alert.
            counts = await request.app[BACKEND].alert_counts("status", _FIRING)
        except Exception as exc:  # the store cannot count now: the append will say so (503)
            log.debug("active alerts not counted: %s", type(exc).__name__)
            return
        cached = _ACTIVE[request.app] = (counts.get(Status.FIRING.value, 0), loop.time())
    if cached[0] >= cap:
        raise Rejected(429, "too_many_active", f"{cached[0]} alerts are firing, the limit "
                       f"is server.max_active_alerts ({cap}); resolutions are still accepted")


def count_firing(request: web.Request, accepted: list[AlertEvent]) -> None:
    """Until the next count, take the firing alerts just accepted as new ones (an upper bound:
    a re-sent alert counts again), so a burst cannot pass the cap within one count's life."""
    cached = _ACTIVE.get(request.app)
    if cached is not None:
        firing = sum(1 for e in accepted if e.alert.status is Status.FIRING)
        _ACTIVE[request.app] = (cached[0] + firing, cached[1])


async def _alertmanager_alerts(_: web.Request, body: bytes, now: datetime) -> list[Alert]:
    return parse_alertmanager(body, now)


async def _generic_alerts(_: web.Request, body: bytes, now: datetime) -> list[Alert]:
    return parse_generic(body, now)


async def alertmanager(request: web.Request) -> web.Response:
    cfg = request.app[RUNTIME].snapshot.config.sources.alertmanager
    return await intake(request, "alertmanager", cfg.auth, cfg.enabled, _alertmanager_alerts)


async def cloudwatch(request: web.Request) -> web.Response:
    cfg = request.app[RUNTIME].snapshot.config.sources.cloudwatch

    async def parse(req: web.Request, body: bytes, now: datetime) -> list[Alert]:
        if "x-amz-sns-message-type" not in req.headers and b'"detail-type"' in body[:4096]:
            # EventBridge API destination posting the event directly (auth from config).
            return parse_eventbridge(body, cfg, now)
        return await handle_sns(body, req.headers, cfg, req.app[SNS_VERIFIER], now)

    return await intake(request, "cloudwatch", cfg.auth, cfg.enabled, parse)


async def generic(request: web.Request) -> web.Response:
    cfg = request.app[RUNTIME].snapshot.config.sources.generic
    return await intake(request, "generic", cfg.auth, cfg.enabled, _generic_alerts)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/alertmanager", alertmanager)
    app.router.add_post("/webhooks/cloudwatch", cloudwatch)
    app.router.add_post("/webhooks/generic", generic)
