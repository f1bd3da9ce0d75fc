"""The one-method interface every receiver implements, and what a sink is built with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import aiohttp

from router.delivery.http import Http
from router.delivery.ratelimit import RateLimit
from router.delivery.records import DeliveryStore
from router.delivery.result import DeliveryResult
from router.delivery.retry import RetryPolicy
from router.delivery.session import ConnectionSettings
from router.model import Notification


class Sink(Protocol):
    async def send(self, n: Notification) -> DeliveryResult:
        """One attempt. Never raises for vendor or network trouble; never puts secrets in text."""
        ...


@dataclass(frozen=True)
class SinkContext:
    """Shared resources a sink factory may use."""

    session: aiohttp.ClientSession  # the process's one (router.delivery.session)
    store: DeliveryStore

    def http(self, settings: ConnectionSettings) -> Http:
        """The session as `settings` (a receiver's config) connect through it."""
        return Http.of(self.session, settings)


@dataclass(frozen=True)
class Receiver:
    """A configured receiver as the Dispatcher drives it."""

    name: str
    sink: Sink
    retry: RetryPolicy
    rate_limit: RateLimit
    # How many incidents of this receiver may be in delivery at once (each one sequential).
    concurrency: int = 32
