"""Graceful drain: what a router does between SIGTERM and its exit (a rolling deploy).

1. Readiness answers 503 (the load balancer stops sending here) and intake refuses new work
   with 503 + Retry-After: sources retry against another replica (or this one, restarted).
2. Delivery takes nothing more from the outbox; the sends in flight finish and are recorded,
   for at most `server.shutdown_grace_seconds` (`Dispatcher.drain`). What was not sent stays
   in the outbox for the next start (embedded) or the partition's next owner (Kafka).
3. The process exits through aiohttp's normal shutdown (listener closed, backend stopped).

So a restart posts nothing twice; only a send the grace period cuts off may go out again.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiohttp import web

from router.api.keys import DISPATCHER
from router.delivery.dispatcher import DrainReport

log = logging.getLogger(__name__)

# Methods that never take new work: reads (and /readyz itself) are served while draining.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class Drain:
    """Whether this process is shutting down, and the drain's one run."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._task: asyncio.Task[DrainReport] | None = None

    @property
    def draining(self) -> bool:
        return self._task is not None

    def begin(self, app: web.Application) -> asyncio.Task[DrainReport]:
        """Start draining (idempotent: a second SIGTERM joins the first drain)."""
        if self._task is None:
            log.info("shutting down: readiness and intake answer 503, delivery finishes what "
                     "is in flight (grace %gs)", self.grace)
            self._task = asyncio.create_task(self._run(app), name="drain")
        return self._task

    async def _run(self, app: web.Application) -> DrainReport:
        report = await app[DISPATCHER].drain(self.grace)
        log.info("drained in %.3fs: %d sends finished, %d cut off", report.seconds,
                 report.finished, report.cut_off)
        if report.cut_off:
            log.warning("%d sends were cut off by server.shutdown_grace_seconds (%gs): they "
                        "were not recorded and go out again after the restart",
                        report.cut_off, self.grace)
        return report


DRAIN = web.AppKey("drain", Drain)


_REFUSAL = orjson.dumps({"status": "error", "error": "this router is shutting down: retry, "
                         "another replica (or this one, restarted) takes it"})


def refusal(request: web.Request) -> web.Response | None:
    """The 503 for a request that would take new work while this process drains, else None.
    Checked by the one request middleware (router.api.requests), not a middleware of its own:
    every layer costs each request."""
    drain = request.config_dict.get(DRAIN)
    if drain is not None and drain.draining and request.method not in _READS:
        return web.Response(status=503, body=_REFUSAL, content_type="application/json",
                            headers={"Retry-After": "2"})
    return None


def _exit(drained: asyncio.Task[DrainReport]) -> None:
    if not drained.cancelled() and (exc := drained.exception()) is not None:
        log.error("drain failed (%s): exiting anyway", type(exc).__name__)
    raise web.GracefulExit  # what aiohttp's own SIGTERM handler raises: run_app shuts down


def on_sigterm(app: web.Application) -> None:
    """The SIGTERM handler `incident-router serve` installs: drain, then exit."""
    app[DRAIN].begin(app).add_done_callback(_exit)
