"""The aiohttp app factory: every resource in a cleanup context, torn down in reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from router.api import dlq, incidents, oncall, ops, pagerduty, slack, status, webhooks
from router.api.keys import BACKEND, DISPATCHER, HTTP, RUNTIME, SNS_VERIFIER
from router.backends.embedded import EmbeddedBackend
from router.backends.factory import engine_context, make_backend
from router.delivery.client import HttpClient
from router.delivery.dispatcher import Dispatcher
from router.delivery.receivers import build_receivers
from router.delivery.sink import SinkContext
from router.metrics import EngineMetrics, IntakeMetrics
from router.runtime import Runtime, Snapshot
from router.sources.sns import SnsVerifier


def build_app(snapshot: Snapshot, config_path: Path | None = None,
              registry: CollectorRegistry | None = None) -> web.Application:
    config = snapshot.config
    registry = registry or CollectorRegistry()
    # The body limit is enforced by intake itself, with a 413 that names the limit.
    app = web.Application(client_max_size=config.server.max_body_bytes + 1)
    app[RUNTIME] = Runtime(snapshot, IntakeMetrics(registry), config_path)
    engine_metrics = EngineMetrics(registry)

    async def http_session(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=30, connect=5)
        client = HttpClient()  # the receivers' (see router/delivery/client.py)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            app[HTTP] = client
            app[SNS_VERIFIER] = SnsVerifier(session)
            yield
        await client.close()

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
        receivers = build_receivers(config.receivers, SinkContext(app[HTTP], store.records))
        dispatcher = Dispatcher(store.outbox, store.outbox, receivers, store=store.records,
                                registry=registry)
        store.engine.on_outbox = dispatcher.wake
        if isinstance(store, EmbeddedBackend):  # its intake gate watches this dispatcher
            store.delivery_backlog = lambda: dispatcher.backlog
            dispatcher.on_done = store.gate.poke
        app[DISPATCHER] = dispatcher
        await dispatcher.start()
        yield
        await dispatcher.stop()

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
    return app
