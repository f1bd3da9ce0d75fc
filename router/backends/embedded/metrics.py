"""Storage metrics of the embedded backend, built from the injected registry.

Named as the shipped dashboard and alerting rules expect (`incident_router_db_*`). The table label
takes the fixed table names below, never anything a user sends.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

# The tables retention looks after, and the ones that hold what is in flight.
TABLES = ("log", "alerts", "incidents", "engine_state", "outbox", "dead_letters", "deliveries",
          "delivery_refs")
PRUNED_TABLES = ("log", "alerts", "incidents", "deliveries", "dead_letters")


class StorageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.size_bytes = Gauge(
            "incident_router_db_size_bytes",
            "Size on disk of the embedded database: the file and its write-ahead log.",
            registry=registry,
        )
        self.rows = Gauge(
            "incident_router_db_rows", "Rows per table of the embedded database.", ["table"],
            registry=registry,
        )
        self.pruned = Counter(
            "incident_router_db_pruned_rows_total",
            "Rows deleted by retention, per table.", ["table"], registry=registry,
        )
        self.last_prune = Gauge(
            "incident_router_db_last_prune_timestamp_seconds",
            "When retention last finished a pass.", registry=registry,
        )
        for table in TABLES:
            self.rows.labels(table)
        for table in PRUNED_TABLES:
            self.pruned.labels(table)
