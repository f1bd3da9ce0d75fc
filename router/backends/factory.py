"""Choose the backend from the config: embedded SQLite (default) or Kafka."""

from __future__ import annotations

from router.backends.base import Backend
from router.backends.embedded import EmbeddedBackend
from router.config import Config, EmbeddedBackendConfig
from router.engine.state import EngineContext
from router.metrics import EngineMetrics


class KafkaNotInstalled(RuntimeError):
    """The config asks for Kafka but the `kafka` extra is not installed."""


def engine_context(config: Config) -> EngineContext:
    return EngineContext(policies=config.severities,
                         default_receivers=tuple(config.default_receivers),
                         incidents=config.incidents, oncall=config.oncall)


def make_backend(config: Config, metrics: EngineMetrics) -> Backend:
    cfg = config.backend
    if isinstance(cfg, EmbeddedBackendConfig):
        return EmbeddedBackend(config.resolve(cfg.path), engine_context(config), metrics,
                               gate=cfg)
    try:  # aiokafka is the optional `kafka` extra: the embedded backend runs without it
        from router.backends.kafka import KafkaBackend
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "aiokafka":
            raise
        raise KafkaNotInstalled(
            "backend.type kafka needs aiokafka: install incident-router[kafka]") from exc
    return KafkaBackend(cfg, engine_context(config), metrics)
