"""Delivery test kit: notifications, fake vendors served on 127.0.0.1, a running Dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from ssl import SSLContext
from typing import Any, Protocol

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

from router.delivery.dispatcher import Dispatcher
from router.delivery.outbox import MemoryOutbox
from router.delivery.receivers import AnyReceiverConfig, ReceiverConfig, build_receivers
from router.delivery.records import MemoryDeliveryStore
from router.delivery.session import new_session
from router.delivery.sink import SinkContext
from router.model import Alert, Notification, NotificationKind, Severity, Status, stable_id

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

# Short backoffs so "fails for a while, then recovers" runs in seconds, not minutes.
FAST_RETRY = {
    "max_attempts": 200,
    "max_elapsed_seconds": 30,
    "initial_backoff_seconds": 0.01,
    "max_backoff_seconds": 0.05,
    "jitter_seconds": 0.01,
}

_configs: TypeAdapter[AnyReceiverConfig] = TypeAdapter(ReceiverConfig)  # type: ignore[arg-type]


def receiver_config(**data: Any) -> AnyReceiverConfig:
    return _configs.validate_python(data)


def alert(status: Status = Status.FIRING, name: str = "DiskFull", **extra: Any) -> Alert:
    fields: dict[str, Any] = {
        "source": "alertmanager", "fingerprint": "f1", "status": status, "name": name,
        "labels": {"alertname": name, "instance": "db-1"},
        "annotations": {"summary": "Disk almost full on db-1"},
        "starts_at": T0, "received_at": T0,
        "ends_at": datetime(2026, 11, 27, 10, 42, tzinfo=UTC) if status is Status.RESOLVED
        else None,
        "severity": Severity.SEV2, "team": "storage", "service": "postgres",
        "runbook_url": "https://runbooks.example.net/disk",
        "dashboard_url": "https://grafana.example.net/d/disk",
        "generator_url": "https://prom.example.net/graph?g0.expr=disk",
    }
    fields.update(extra)
    return Alert(**fields)


def notification(
    kind: NotificationKind = NotificationKind.TRIGGER,
    *,
    receiver: str = "r",
    group: str = "g1",
    severity: Severity = Severity.SEV2,
    title: str = "DiskFull on db-1",
    n: int = 0,
    details: dict[str, Any] | None = None,
    alerts: Iterable[Alert] | None = None,
) -> Notification:
    if alerts is None:
        alerts = [alert(Status.RESOLVED if kind is NotificationKind.RESOLVE else Status.FIRING)]
    return Notification(
        id=stable_id(receiver, group, kind.value, str(n)),
        receiver=receiver, kind=kind, group_key=group, dedup_key=f"inc:{group}",
        severity=severity, title=title, alerts=tuple(alerts), incident_id=f"INC-{group}",
        created_at=T0, details=details or {},
    )


class Serve(Protocol):
    """Serves a fake vendor on 127.0.0.1 (over TLS with `ssl`); returns its base URL."""

    def __call__(self, app: web.Application,
                 ssl: SSLContext | None = None) -> Awaitable[str]: ...


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[TestServer] = []

    async def start(app: web.Application, ssl: SSLContext | None = None) -> str:
        # No access log: it is the fake vendor's log, and it prints the secret paths.
        server = TestServer(app, host="127.0.0.1")
        await server.start_server(access_log=None, ssl=ssl)
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for s in servers:
        await s.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_session() as client:  # as router.api.app: proxies from the environment
        yield client


@dataclass
class Harness:
    outbox: MemoryOutbox
    store: MemoryDeliveryStore
    registry: CollectorRegistry
    dispatcher: Dispatcher

    def add(self, *ns: Notification) -> None:
        for n in ns:
            self.outbox.add(n)
        self.dispatcher.wake()


Build = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def harness(session: aiohttp.ClientSession) -> AsyncIterator[Build]:
    started: list[Dispatcher] = []

    async def build(*configs: AnyReceiverConfig, store: MemoryDeliveryStore | None = None,
                    outbox: MemoryOutbox | None = None) -> Harness:
        store = store or MemoryDeliveryStore()
        outbox = outbox or MemoryOutbox()
        registry = CollectorRegistry()
        receivers = build_receivers(configs, SinkContext(session=session, store=store))
        dispatcher = Dispatcher(outbox, outbox, receivers, store=store, registry=registry,
                                poll_interval=0.05)
        await dispatcher.start()
        started.append(dispatcher)
        return Harness(outbox, store, registry, dispatcher)

    yield build
    for d in started:
        await d.stop()
