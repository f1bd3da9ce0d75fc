"""Delivery metrics, built from an injected registry and pre-created at zero per receiver.

Labels are the receiver *name* from router.yaml and a reason from a closed set: never a URL,
key or vendor text.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

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
            "Notifications moved to the dead-letter store.", ["receiver"], registry=registry,
        )
        self.latency = Histogram(
            "incident_router_delivery_latency_seconds",
            "From the dispatcher taking a notification to the vendor accepting it "
            "(rate-limit waits and retries included).",
            ["receiver"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        for name in receivers:
            self.add_receiver(name)

    def add_receiver(self, name: str) -> None:
        self.sent.labels(name)
        self.retries.labels(name)
        self.dead_lettered.labels(name)
        self.latency.labels(name)
        for reason in FAILURE_REASONS:
            self.failed.labels(name, reason)
