"""Kafka backend: topic layout, topic creation, client settings, event encoding.

Topics (all `<prefix>.<name>`, created with `partitions` and `replication_factor`):

| topic               | key            | value                        | cleanup        |
|---------------------|----------------|------------------------------|----------------|
| `alerts`            | group key      | event JSON (the log)         | delete         |
| `state`             | group key      | GroupState bytes, tombstone  | compact        |
| `alerts-view`       | group key      | JSON list of its alerts      | compact        |
| `notifications`     | group key      | Notification JSON (outbox)   | delete         |
| `notifications-dlq` | outbox item id | DeadLetter JSON, tombstone   | compact,delete |
| `delivery-records`  | receiver + id  | delivery record / vendor ref | compact,delete |
| `incidents-view`    | incident id    | Incident JSON (read side)    | compact        |

`retention.ms` of the deleted ones comes from the config: `log_retention` (alerts),
`notifications_retention`, `dead_letters_max_age` (dlq), `delivery_records_max_age`.
An age of 0 keeps the topic's records forever (`retention.ms` -1; compaction alone for the
compacted ones). Topic creation sets these; `kafka init` also sets them on existing topics,
keeping every other topic-level setting an operator made.

`alerts` and `state` must have the same partition count: the same key hashes to the same
partition number in both (co-partitioning), which is what lets a partition's new owner restore
exactly the state it needs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
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


def _retention_ms(age: timedelta) -> str:
    return str(int(age.total_seconds() * 1000)) if age else "-1"


def _compact_for(age: timedelta) -> dict[str, str]:
    """Compacted, and with an age also deleted after it (tombstones or not)."""
    if not age:
        return dict(_COMPACT)
    return {"cleanup.policy": "compact,delete", "retention.ms": _retention_ms(age)}


def topic_configs(cfg: KafkaBackendConfig) -> dict[str, dict[str, str]]:
    """The topic-level settings of every topic of the layout, by topic name."""
    topics = topic_names(cfg.topic_prefix)
    return {
        topics.alerts: {"cleanup.policy": "delete",
                        "retention.ms": _retention_ms(cfg.log_retention)},
        # Compacted: the latest value per key survives, so a restore or a tail reads little.
        topics.state: dict(_COMPACT),
        topics.notifications: {"cleanup.policy": "delete",
                               "retention.ms": _retention_ms(cfg.notifications_retention)},
        topics.notifications_dlq: _compact_for(cfg.dead_letters_max_age),
        topics.alerts_view: dict(_COMPACT),
        topics.delivery_records: _compact_for(cfg.delivery_records_max_age),
        topics.incidents_view: dict(_COMPACT),
    }


def topic_specs(cfg: KafkaBackendConfig) -> list[NewTopic]:
    return [NewTopic(name, cfg.partitions, cfg.replication_factor, topic_configs=configs)
            for name, configs in topic_configs(cfg).items()]


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
    """`incident-router kafka init`: create what is missing, check the layout, and set the
    retention settings on topics that existed already.

    Returns the partition count of every topic of the layout.
    """
    counts = await ensure_topics(cfg)
    admin = AIOKafkaAdminClient(**client_kwargs(cfg))
    await admin.start()
    try:
        await _apply_configs(admin, topic_configs(cfg))
    finally:
        await admin.close()
    return counts


_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs v1+ config_source: set on the topic itself


async def _apply_configs(admin: AIOKafkaAdminClient,
                         wanted: dict[str, dict[str, str]]) -> None:
    """Set `wanted` on each topic where it differs. AlterConfigs replaces a topic's whole
    set of overrides, so the overrides it has (an operator's) are read and sent along."""
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted])
    changes: list[ConfigResource] = []
    for response in responses:
        for error_code, _, _, name, entries in response.resources:
            if error_code != 0:
                raise for_code(error_code)(f"cannot describe the settings of topic {name}")
            overrides = {
                entry[0]: entry[1] for entry in entries
                if entry[1] is not None and (
                    entry[3] == _DYNAMIC_TOPIC_CONFIG if response.API_VERSION >= 1
                    else not entry[2] and not entry[3])  # v0: not read-only, not default
            }
            if any(overrides.get(k) != v for k, v in wanted[name].items()):
                changes.append(ConfigResource(ConfigResourceType.TOPIC, name,
                                              overrides | wanted[name]))
    if not changes:
        return
    for response in await admin.alter_configs(changes):
        for error_code, message, _, name in response.resources:
            if error_code != 0:
                raise for_code(error_code)(f"cannot set the retention of topic {name}: {message}")


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
