"""Choose the backend from the config: embedded SQLite (default) or Kafka."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from router.backends.base import Backend
from router.backends.embedded import EmbeddedBackend
from router.backends.embedded_retention import RetentionPolicy
from router.config import Config, EmbeddedBackendConfig
from router.engine.state import EngineContext
from router.metrics import EngineMetrics


def engine_context(config: Config) -> EngineContext:
    return EngineContext(policies=config.severities,
                         default_receivers=tuple(config.default_receivers),
                         incidents=config.incidents, oncall=config.oncall)


def make_backend(config: Config, metrics: EngineMetrics,
                 registry: CollectorRegistry | None = None) -> Backend:
    """`registry`: where the backend's own metrics go (the embedded database's size)."""
    cfg = config.backend
    if isinstance(cfg, EmbeddedBackendConfig):
        return EmbeddedBackend(config.resolve(cfg.path), engine_context(config), metrics,
                               gate=cfg, retention=RetentionPolicy.of(cfg), registry=registry)
    from router.backends.kafka import KafkaBackend

    return KafkaBackend(cfg, engine_context(config), metrics)
