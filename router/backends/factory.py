"""Choose the backend from the config: embedded SQLite (default) or Kafka. Each backend
package wires itself (`build` in its `backend` module); this only picks one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager

from prometheus_client import CollectorRegistry

from router.backends.base import Backend
from router.backends.embedded import backend as embedded
from router.config import Config, EmbeddedBackendConfig
from router.delivery.outbox import DeadLetters
from router.engine.quiet import Muter, Quiet
from router.engine.state import EngineContext
from router.metrics import EngineMetrics
from router.model import Severity
from router.noise.muters import HoursMuter, InhibitMuter, WindowMuter


class KafkaNotInstalled(RuntimeError):
    """The config asks for Kafka but the `kafka` extra is not installed."""


def engine_context(config: Config) -> EngineContext:
    return EngineContext(policies=config.severities,
                         default_receivers=tuple(config.default_receivers),
                         incidents=config.incidents, oncall=config.oncall,
                         quiet=quiet_of(config), deferred_chat=deferred_chat(config),
                         digest=config.digest, ticket_receivers=config.tickets.receivers,
                         heartbeats={h.name: h for h in config.heartbeats})


CHAT_TYPES = ("slack", "teams")


def deferred_chat(config: Config) -> frozenset[str]:
    """The chat receivers that get a quiet post for a deferred alert (`router.engine.deferred`)."""
    if config.business_hours.chat_when_deferred != "quiet":
        return frozenset()
    return frozenset(r.name for r in config.receivers if r.type in CHAT_TYPES)


def quiet_of(config: Config) -> Quiet:
    """The config's muters, in precedence order after silences (which the engine adds):
    maintenance windows, inhibition, business hours."""
    muters: list[Muter] = []
    if config.maintenance_windows:
        muters.append(WindowMuter(config.maintenance_windows))
    if config.inhibit_rules:
        muters.append(InhibitMuter(config.inhibit_rules))
    hours = config.business_hours
    if hours.calendars and (hours.default or hours.teams):
        responses = {sev: config.severities.for_severity(sev).response for sev in Severity}
        muters.append(HoursMuter(responses, hours.calendars, hours.default, hours.teams))
    return Quiet(muters)


def make_backend(config: Config, metrics: EngineMetrics,
                 registry: CollectorRegistry | None = None) -> Backend:
    """`registry`: where the backend's own metrics go (the embedded database's size)."""
    cfg = config.backend
    context = engine_context(config)
    if isinstance(cfg, EmbeddedBackendConfig):
        return embedded.build(config, cfg, context, metrics, registry)
    with _kafka_extra():
        from router.backends.kafka import backend as kafka
    return kafka.build(config, cfg, context, metrics, registry)


def dead_letters(config: Config) -> AbstractAsyncContextManager[DeadLetters]:
    """The configured backend's dead-letter store alone (`incident-router dlq`), without an
    engine or delivery; raises `StoreUnavailable` on entry when it cannot be reached."""
    cfg = config.backend
    if isinstance(cfg, EmbeddedBackendConfig):
        return embedded.dead_letters(config, cfg)
    with _kafka_extra():
        from router.backends.kafka import backend as kafka
    return kafka.dead_letters(config, cfg)


@contextmanager
def _kafka_extra() -> Iterator[None]:
    """Around the import of the Kafka backend: aiokafka is the optional `kafka` extra (the
    embedded backend runs without it)."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "aiokafka":
            raise
        raise KafkaNotInstalled(
            "backend.type kafka needs aiokafka: install incident-router[kafka]") from exc
