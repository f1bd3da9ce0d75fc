"""Kafka backend: topic layout, topic creation, client settings, event encoding.

Topics (all `<prefix>.<name>`, created with `partitions` and `replication_factor`):

| topic                 | key              | value                        | cleanup |
|-----------------------|------------------|------------------------------|---------|
| `alerts`              | group key        | event JSON (the log)         | delete  |
| `state`               | group key        | GroupState bytes, tombstone  | compact |
| `alerts-view`         | group key        | JSON list of its alerts      | compact |
| `notifications`       | group key        | Notification JSON (outbox)   | delete  |
| `notifications-dlq`   | outbox item id   | DeadLetter JSON, tombstone   | compact |
| `delivery-records`    | receiver + id    | delivery record / vendor ref | compact |
| `incidents-view`      | incident id      | Incident JSON (read side)    | compact |

`alerts` and `state` must have the same partition count: the same key hashes to the same
partition number in both (co-partitioning), which is what lets a partition's new owner restore
exactly the state it needs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context
from pydantic import TypeAdapter

from router.backends.base import LogEvent
from router.config import KafkaBackendConfig
from router.model import Event, event_key

# --- topic layout ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    alerts: str
    state: str
    notifications: str
    notifications_dlq: str
    alerts_view: str
    delivery_records: str
    incidents_view: str

    def all(self) -> list[str]:
        return [self.alerts, self.state, self.notifications, self.notifications_dlq,
                self.alerts_view, self.delivery_records, self.incidents_view]


def topic_names(prefix: str) -> Topics:
    return Topics(
        alerts=f"{prefix}.alerts",
        state=f"{prefix}.state",
        notifications=f"{prefix}.notifications",
        notifications_dlq=f"{prefix}.notifications-dlq",
        alerts_view=f"{prefix}.alerts-view",
        delivery_records=f"{prefix}.delivery-records",
        incidents_view=f"{prefix}.incidents-view",
    )


class TopicLayoutError(Exception):
    """Existing topics cannot be used as they are (e.g. state not co-partitioned with alerts)."""


# --- client settings -------------------------------------------------------------------------


def client_kwargs(cfg: KafkaBackendConfig) -> dict[str, Any]:
    """Connection settings shared by every aiokafka client (producer, consumer, admin).

    The result holds the SASL password: pass it to aiokafka, never log it.
    """
    kwargs: dict[str, Any] = {
        "bootstrap_servers": list(cfg.bootstrap_servers),
        "security_protocol": cfg.security_protocol,
    }
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = create_ssl_context(
            cafile=cfg.ssl_cafile, certfile=cfg.ssl_certfile, keyfile=cfg.ssl_keyfile
        )
    if cfg.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        kwargs["sasl_mechanism"] = cfg.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = cfg.sasl_username
        kwargs["sasl_plain_password"] = (
            cfg.sasl_password.get_secret_value() if cfg.sasl_password is not None else None
        )
    return kwargs


# --- topic creation --------------------------------------------------------------------------

_COMPACT = {"cleanup.policy": "compact"}


def topic_specs(cfg: KafkaBackendConfig) -> list[NewTopic]:
    topics = topic_names(cfg.topic_prefix)

    def spec(name: str, configs: dict[str, str] | None = None) -> NewTopic:
        return NewTopic(name, cfg.partitions, cfg.replication_factor, topic_configs=configs or {})

    return [
        spec(topics.alerts),
        # Compacted: the latest value per key survives, so a restore or a tail reads little.
        spec(topics.state, _COMPACT),
        spec(topics.notifications),
        spec(topics.notifications_dlq, _COMPACT),
        spec(topics.alerts_view, _COMPACT),
        spec(topics.delivery_records, _COMPACT),
        spec(topics.incidents_view, _COMPACT),
    ]


async def ensure_topics(
    cfg: KafkaBackendConfig, visible_within: float = 30.0
) -> dict[str, int]:
    """Create the topics if missing (callers gate this on `cfg.create_topics`).

    Returns the partition count per topic, once the broker serves metadata for them. Existing
    topics are left alone, but alerts and state must have the same partition count or a
    partition's state would be restored from the wrong changelog partition.
    """
    admin = AIOKafkaAdminClient(**client_kwargs(cfg))
    await admin.start()
    try:
        response = await admin.create_topics(topic_specs(cfg))
        for item in response.topic_errors:
            name, code = item[0], item[1]
            error = for_code(code)
            if code != 0 and error is not TopicAlreadyExistsError:
                raise error(f"cannot create topic {name}")
        return await _check(admin, cfg, visible_within)
    finally:
        await admin.close()


async def check_layout(cfg: KafkaBackendConfig, visible_within: float = 30.0) -> dict[str, int]:
    """Partition count per topic; raises TopicLayoutError if one is missing or alerts and
    state are not co-partitioned (for `create_topics: false`, where an operator made them)."""
    admin = AIOKafkaAdminClient(**client_kwargs(cfg))
    await admin.start()
    try:
        return await _check(admin, cfg, visible_within)
    finally:
        await admin.close()


async def init_topics(cfg: KafkaBackendConfig) -> dict[str, int]:
    """`incident-router kafka init`: create what is missing, check the layout.

    Returns the partition count of every topic of the layout.
    """
    return await ensure_topics(cfg)


async def _check(
    admin: AIOKafkaAdminClient, cfg: KafkaBackendConfig, within: float
) -> dict[str, int]:
    topics = topic_names(cfg.topic_prefix)
    counts = await _partition_counts(admin, topics.all(), within)
    if counts[topics.alerts] != counts[topics.state]:
        raise TopicLayoutError(
            f"topics {topics.alerts} ({counts[topics.alerts]} partitions) and "
            f"{topics.state} ({counts[topics.state]} partitions) must have the same "
            "partition count"
        )
    return counts


async def _partition_counts(
    admin: AIOKafkaAdminClient, names: list[str], within: float
) -> dict[str, int]:
    """Partition count per topic, once metadata shows them all (it lags creation briefly)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        described = await admin.describe_topics(names)
        counts = {
            d["topic"]: len(d["partitions"])
            for d in described
            if d["error_code"] == 0 and d["partitions"]
        }
        if set(counts) == set(names):
            return counts
        if asyncio.get_running_loop().time() > deadline:
            missing = ", ".join(sorted(set(names) - set(counts)))
            raise TopicLayoutError(f"topics {missing} not visible in metadata after {within:g}s")
        await asyncio.sleep(0.1)


# --- encoding --------------------------------------------------------------------------------

_EVENT: TypeAdapter[LogEvent] = TypeAdapter(Event)


def encode_event(event: LogEvent) -> tuple[bytes, bytes]:
    """(key, value) of a log record: the group key and the event's JSON (tagged by `kind`)."""
    return event_key(event).encode(), event.model_dump_json().encode()


def decode_event(value: bytes) -> LogEvent:
    return _EVENT.validate_json(value)
