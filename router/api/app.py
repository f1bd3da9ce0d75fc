"""The aiohttp app factory: every resource in a cleanup context, torn down in reverse order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from router.api import amv2, dlq, incidents, oncall, ops, pagerduty, slack, status, webhooks
from router.api.drain import DRAIN, Drain
from router.api.keys import BACKEND, DISPATCHER, HTTP, RUNTIME, SNS_VERIFIER
from router.api.requests import request_context
from router.api.runbooks import add_routes as add_runbooks
from router.backends.factory import engine_context, make_backend
from router.config import ConfigError
from router.delivery.dispatcher import Dispatcher
from router.delivery.receivers import build_receivers
from router.delivery.session import TlsFileError, new_session
from router.delivery.sink import Receiver, SinkContext
from router.metrics import EngineMetrics, IntakeMetrics
from router.runtime import Runtime, Snapshot
from router.sources.sns import SnsVerifier
from router.ui.app import add_routes as add_console

log = logging.getLogger(__name__)


def build_app(snapshot: Snapshot, config_path: Path | None = None,
              registry: CollectorRegistry | None = None) -> web.Application:
    config = snapshot.config
    registry = registry or CollectorRegistry()
    # The body limit is enforced by intake itself, with a 413 that names the limit.
    app = web.Application(client_max_size=config.server.max_body_bytes + 1,
                          middlewares=[request_context])
    app[DRAIN] = Drain(config.server.shutdown_grace_seconds)
    app[RUNTIME] = Runtime(snapshot, IntakeMetrics(registry), config_path)
    engine_metrics = EngineMetrics(registry)

    async def http_session(app: web.Application) -> AsyncIterator[None]:
        # The process's one outbound session: receivers and SNS certificates (proxies from
        # the environment, one connection pool).
        async with new_session() as session:
            app[HTTP] = session
            app[SNS_VERIFIER] = SnsVerifier(session)
            yield

    async def backend(app: web.Application) -> AsyncIterator[None]:
        store = make_backend(config, engine_metrics, registry)
        await store.start()
        app[BACKEND] = store
        app[RUNTIME].on_reload.append(
            lambda snap: store.engine.set_context(engine_context(snap.config)))
        yield
        await store.stop()

    async def delivery(app: web.Application) -> AsyncIterator[None]:
        store = app[BACKEND]
        ctx = SinkContext(app[HTTP], store.records)
        receivers = build_receivers(config.receivers, ctx)
        dispatcher = Dispatcher(store.outbox, store.outbox, receivers, store=store.records,
                                registry=registry)

        built: dict[int, dict[str, Receiver]] = {}

        def build(snap: Snapshot) -> None:
            # All of the new receivers or none: one that cannot be built (a CA file that cannot
            # be read) refuses the reload, and the running receivers and config stay.
            try:
                built[id(snap)] = build_receivers(snap.config.receivers, ctx)
            except TlsFileError as exc:
                raise ConfigError(f"receivers cannot be built: {exc}") from None

        def swap(snap: Snapshot) -> None:
            receivers = built.pop(id(snap), None)
            built.clear()
            if receivers is not None:
                dispatcher.set_receivers(receivers)

        runtime = app[RUNTIME]
        runtime.before_reload.append(build)
        runtime.on_reload.append(swap)
        runtime.receivers_follow_reload = True
        store.engine.on_outbox = dispatcher.wake
        store.watch_delivery(dispatcher)  # the intake gate's view of delivery
        app[DISPATCHER] = dispatcher
        await dispatcher.start()
        yield
        # After a SIGTERM this ran already (router.api.drain, while /readyz said 503); on
        # any other way out it runs here, so sends in flight are still finished and recorded.
        await app[DRAIN].begin(app)

    app.cleanup_ctx.append(http_session)
    app.cleanup_ctx.append(backend)
    app.cleanup_ctx.append(delivery)
    webhooks.add_routes(app)
    ops.add_routes(app)
    dlq.add_routes(app)
    incidents.add_routes(app)
    oncall.add_routes(app)
    slack.add_routes(app)
    pagerduty.add_routes(app)
    status.add_routes(app)
    amv2.add_routes(app)
    add_runbooks(app)  # /runbooks/
    add_console(app, config.api)  # /ui/
    return app
