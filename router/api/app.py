"""The aiohttp app factory: every resource in a cleanup context, torn down in reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from router.api import ops, webhooks
from router.api.keys import BACKEND, HTTP, RUNTIME, SNS_VERIFIER
from router.backends.embedded import EmbeddedBackend
from router.config import EmbeddedBackendConfig
from router.metrics import IntakeMetrics
from router.runtime import Runtime, Snapshot
from router.sources.sns import SnsVerifier


def build_app(snapshot: Snapshot, config_path: Path | None = None,
              registry: CollectorRegistry | None = None) -> web.Application:
    config = snapshot.config
    # The body limit is enforced by intake itself, with a 413 that names the limit.
    app = web.Application(client_max_size=config.server.max_body_bytes + 1)
    metrics = IntakeMetrics(registry or CollectorRegistry())
    app[RUNTIME] = Runtime(snapshot, metrics, config_path)

    async def http_session(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=10, connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            app[HTTP] = session
            app[SNS_VERIFIER] = SnsVerifier(session)
            yield

    async def backend(app: web.Application) -> AsyncIterator[None]:
        cfg = config.backend
        if not isinstance(cfg, EmbeddedBackendConfig):
            raise NotImplementedError("the kafka backend is not wired yet")
        store = EmbeddedBackend(config.resolve(cfg.path))
        await store.start()
        app[BACKEND] = store
        yield
        await store.stop()

    app.cleanup_ctx.append(http_session)
    app.cleanup_ctx.append(backend)
    webhooks.add_routes(app)
    ops.add_routes(app)
    return app
