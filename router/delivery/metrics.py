"""Delivery metrics, built from an injected registry and pre-created at zero per receiver.

Labels are the receiver *name* from router.yaml and a reason from a closed set: never a URL,
key or vendor text. (A notification for a receiver the config does not have is counted under
the name it carries: such names come from the config's own routing, so they stay few.)
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from router.delivery.result import FAILURE_REASONS

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry, receivers: Iterable[str]) -> None:
        self.sent = Counter(
            "incident_router_notifications_sent_total",
            "Notifications the receiver's vendor accepted.", ["receiver"], registry=registry,
        )
        self.failed = Counter(
            "incident_router_notification_failures_total",
            "Failed delivery attempts, by reason.", ["receiver", "reason"], registry=registry,
        )
        self.retries = Counter(
            "incident_router_notification_retries_total",
            "Delivery attempts that were retried.", ["receiver"], registry=registry,
        )
        self.dead_lettered = Counter(
            "incident_router_notifications_dead_lettered_total",
            "Notifications moved to the dead-letter store, by the reason of the last failure.",
            ["receiver", "reason"], registry=registry,
        )
        self.dead_letters = Gauge(
            "incident_router_dead_letters",
            "Notifications parked in the dead-letter store now (recounted every minute and "
            "after a replay).", ["receiver"], registry=registry,
        )
        self.backlog = Gauge(
            "incident_router_outbox_backlog",
            "Notifications taken from the outbox and not yet delivered or dead-lettered.",
            ["receiver"], registry=registry,
        )
        self.latency = Histogram(
            "incident_router_delivery_latency_seconds",
            "From the dispatcher taking a notification to the vendor accepting it "
            "(rate-limit waits and retries included).",
            ["receiver"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self._names: set[str] = set()
        # Every name a gauge was set for, configured or not: each is reset when it empties.
        self._gauged: set[str] = set()
        self._backlog: dict[str, Gauge] = {}  # the backlog gauge's child per receiver name
        for name in receivers:
            self.add_receiver(name)

    def add_receiver(self, name: str) -> None:
        if name in self._names:
            return
        self._names.add(name)
        self.sent.labels(name)
        self.retries.labels(name)
        self.latency.labels(name)
        self.dead_letters.labels(name)
        self.backlog.labels(name)
        for reason in FAILURE_REASONS:
            self.failed.labels(name, reason)
            self.dead_lettered.labels(name, reason)

    def dead_lettered_one(self, receiver: str, reason: str) -> None:
        self.dead_lettered.labels(receiver, reason).inc()
        self.dead_letters.labels(receiver).inc()
        self._gauged.add(receiver)

    def set_dead_letters(self, receivers: Iterable[str]) -> None:
        """The store's content, one receiver name per parked notification."""
        tally = Tally(receivers)
        self._gauged.update(tally)
        for name in self._names | self._gauged:
            self.dead_letters.labels(name).set(tally.get(name, 0))

    def taken(self, receiver: str) -> None:
        child = self._backlog.get(receiver)
        if child is None:  # looked up once per name: `labels()` per item was a hot spot
            child = self._backlog[receiver] = self.backlog.labels(receiver)
            self._gauged.add(receiver)
        child.inc()

    def done(self, receiver: str) -> None:
        child = self._backlog.get(receiver)
        if child is None:
            child = self._backlog[receiver] = self.backlog.labels(receiver)
        child.dec()

    def clear_backlog(self) -> None:
        for name in self._names | self._gauged:
            self.backlog.labels(name).set(0)
