"""Intake and operations metrics, built from an injected registry and pre-created at zero.

Label values are fixed words (source names, reason codes, route names): never user input,
URLs or secrets. The registry is the router's own (tests build several apps per process), so
the process and Python collectors the default registry would carry are added to it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)

from router import __version__

if TYPE_CHECKING:
    from router.engine.engine import Batch

SOURCES = ("alertmanager", "cloudwatch", "generic")
REJECT_REASONS = (
    "malformed_json",
    "invalid_shape",
    "too_large",
    "too_many_alerts",
    "too_many_labels",
    "label_too_large",
    "too_many_active",
    "unauthorized",
    "bad_signature",
    "bad_signature_version",
    "bad_cert_url",
    "topic_not_allowed",
    "raw_delivery",
    "bad_subscribe_url",
    "unauthenticated_eventbridge",
    "disabled",
)


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # process_* (CPU, memory, open fds, start time), python_info and python_gc_*: the
        # library's collectors are stateless readers of /proc and the gc module, so sharing
        # them between registries is safe.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
        self.received = Counter(
            "incident_router_alerts_received_total",
            "Alerts accepted and durably appended to the log, by source.",
            ["source"],
            registry=registry,
        )
        self.rejected = Counter(
            "incident_router_alerts_rejected_total",
            "Requests refused before reaching the log, by source and reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.unavailable = Counter(
            "incident_router_intake_unavailable_total",
            "Requests answered 503 because the log could not take them, by source.",
            ["source"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "incident_router_http_request_duration_seconds",
            "HTTP request latency by route and status class.",
            ["route", "code"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.build = Info(
            "incident_router_build", "Version of the running router.", registry=registry
        )
        self.build.info({"version": __version__})
        self.reload_ok = Gauge(
            "incident_router_config_last_reload_successful",
            "1 if the last configuration reload succeeded, else 0.",
            registry=registry,
        )
        self.reload_time = Gauge(
            "incident_router_config_last_reload_success_timestamp_seconds",
            "Time of the last successful configuration (re)load.",
            registry=registry,
        )
        self.rules_loaded = Gauge(
            "incident_router_rules_loaded", "Classification rules in effect.", registry=registry
        )
        for s in SOURCES:
            self.received.labels(s)
            self.unavailable.labels(s)
            for r in REJECT_REASONS:
                self.rejected.labels(s, r)


NOTIFICATION_KINDS = (
    "trigger", "update", "repeat", "acknowledge", "resolve", "escalate", "sla_breach", "reminder",
    "page",
)
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
SLAS = ("ack", "resolve")
QUIET_REASONS = ("silenced", "maintenance", "inhibited", "incident", "deferred")  # quiet.REASONS


class EngineMetrics:
    """The decision engine, the same names on both backends."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "incident_router_engine_events_total", "Log events decided by the engine.",
            registry=registry,
        )
        self.duplicates = Counter(
            "incident_router_engine_duplicates_suppressed_total",
            "Alert deliveries recognised as duplicates and not notified.", registry=registry,
        )
        self.stale = Counter(
            "incident_router_engine_stale_events_total",
            "Events older, by the source's clock, than what the alert already had.",
            registry=registry,
        )
        self.flapping = Counter(
            "incident_router_engine_flapping_groups_total",
            "Groups that started flapping (notifications damped).", registry=registry,
        )
        self.notifications = Counter(
            "incident_router_engine_notifications_total",
            "Notifications emitted into the outbox, by kind (reason).", ["kind"],
            registry=registry,
        )
        self.groups = Gauge(
            "incident_router_engine_groups", "Alert groups held in the engine's state.",
            registry=registry,
        )
        self.lag = Gauge(
            "incident_router_engine_consumer_lag",
            "Log events appended but not yet decided.", registry=registry,
        )
        self.owned_partitions = Gauge(
            "incident_router_engine_owned_partitions",
            "Log partitions this process owns (1 on the embedded backend).", registry=registry,
        )
        self.restore_seconds = Gauge(
            "incident_router_engine_restore_duration_seconds",
            "How long the last state restore took.", registry=registry,
        )
        self.aborts = Counter(
            "incident_router_engine_transaction_aborts_total",
            "Engine commits that failed and were rolled back.", registry=registry,
        )
        self.sla_breaches = Counter(
            "incident_router_sla_breaches_total",
            "Incident SLAs breached (once per incident and SLA), by severity and SLA.",
            ["severity", "sla"], registry=registry,
        )
        self.quieted = Counter(
            "incident_router_alerts_quieted_total",
            "Firing alerts kept quiet (not notified) by reason: silenced, maintenance, "
            "inhibited, incident, deferred (once each time an alert becomes quiet).",
            ["reason"], registry=registry,
        )
        self.unknown_commands = Counter(
            "incident_router_engine_unknown_commands_total",
            "Incident commands for an incident the engine does not know (ignored).",
            registry=registry,
        )
        for kind in NOTIFICATION_KINDS:
            self.notifications.labels(kind)
        for severity in SEVERITIES:
            for sla in SLAS:
                self.sla_breaches.labels(severity, sla)
        for reason in QUIET_REASONS:
            self.quieted.labels(reason)

    def count(self, batch: Batch) -> None:
        """The counters of one committed batch (both runners call this after commit)."""
        self.duplicates.inc(batch.duplicates)
        self.stale.inc(batch.stale)
        self.flapping.inc(batch.flapping)
        self.unknown_commands.inc(batch.unknown_commands)
        for kind, n in batch.notified.items():
            self.notifications.labels(kind.value).inc(n)
        for (severity, sla), n in batch.sla_breaches.items():
            self.sla_breaches.labels(severity, sla).inc(n)
        for reason, n in batch.quieted.items():
            self.quieted.labels(reason).inc(n)
