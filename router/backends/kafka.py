"""Kafka backend, intake side: topic layout, topic creation, client settings, the event log.

Every accepted event goes to `<prefix>.alerts`, keyed by `model.event_key` (the group key), so
all events of one incident land in one partition and reach one engine owner. The engine keeps
its state in `<prefix>.state`, a compacted changelog with the same partition count: the same
key hashes to the same partition number in both topics (co-partitioning), which is what lets
a partition's new owner restore exactly the state it needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context
from pydantic import TypeAdapter

from router.backends.base import LogEvent, LogUnavailable
from router.config import KafkaBackendConfig
from router.model import Event, event_key

# --- topic layout ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    alerts: str
    state: str
    notifications: str
    notifications_dlq: str


def topic_names(prefix: str) -> Topics:
    return Topics(
        alerts=f"{prefix}.alerts",
        state=f"{prefix}.state",
        notifications=f"{prefix}.notifications",
        notifications_dlq=f"{prefix}.notifications-dlq",
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


def topic_specs(cfg: KafkaBackendConfig) -> list[NewTopic]:
    topics = topic_names(cfg.topic_prefix)

    def spec(name: str, configs: dict[str, str] | None = None) -> NewTopic:
        return NewTopic(name, cfg.partitions, cfg.replication_factor, topic_configs=configs or {})

    return [
        spec(topics.alerts),
        # Compacted: the latest state per key survives, so a restore reads little.
        spec(topics.state, {"cleanup.policy": "compact"}),
        spec(topics.notifications),
        spec(topics.notifications_dlq),
    ]


async def ensure_topics(cfg: KafkaBackendConfig, visible_within: float = 30.0) -> None:
    """Create the four topics if missing (callers gate this on `cfg.create_topics`).

    Returns once the broker serves metadata for them. Existing topics are left alone, but alerts
    and state must have the same partition count or a partition's state would be restored from
    the wrong changelog partition.
    """
    topics = topic_names(cfg.topic_prefix)
    admin = AIOKafkaAdminClient(**client_kwargs(cfg))
    await admin.start()
    try:
        response = await admin.create_topics(topic_specs(cfg))
        for item in response.topic_errors:
            name, code = item[0], item[1]
            error = for_code(code)
            if code != 0 and error is not TopicAlreadyExistsError:
                raise error(f"cannot create topic {name}")
        counts = await _partition_counts(admin, [topics.alerts, topics.state], visible_within)
    finally:
        await admin.close()
    if counts[topics.alerts] != counts[topics.state]:
        raise TopicLayoutError(
            f"topics {topics.alerts} ({counts[topics.alerts]} partitions) and "
            f"{topics.state} ({counts[topics.state]} partitions) must have the same "
            "partition count"
        )


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


# --- the log ---------------------------------------------------------------------------------


class KafkaLog:
    """`router.backends.base.Log` on the alerts topic: idempotent producer, acks=all.

    Partitioning is aiokafka's default (murmur2 of the key, as the Java client), so a key's
    partition number is stable and the same in every co-partitioned topic.

    A timeout does not cancel what was handed to the producer: with idempotence the producer
    keeps retrying those batches, so events of an append that raised LogUnavailable may still
    reach the log later. The source retries after the 503 and the engine deduplicates.
    """

    def __init__(self, cfg: KafkaBackendConfig) -> None:
        self._cfg = cfg
        self._topic = topic_names(cfg.topic_prefix).alerts
        self._timeout = cfg.produce_timeout_seconds
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **client_kwargs(self._cfg),
            enable_idempotence=True,
            acks="all",
            client_id="incident-router-intake",
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def append(self, events: Sequence[LogEvent]) -> None:
        if not events:
            return
        producer = self._producer
        if producer is None:
            raise LogUnavailable("kafka log is not started")
        try:
            await asyncio.wait_for(self._send_all(producer, events), self._timeout)
        except TimeoutError:
            raise LogUnavailable(
                f"kafka did not acknowledge {len(events)} event(s) on {self._topic} "
                f"within {self._timeout:g}s"
            ) from None
        except KafkaError as exc:
            raise LogUnavailable(
                f"kafka rejected the append to {self._topic}: {type(exc).__name__}"
            ) from exc

    async def _send_all(self, producer: AIOKafkaProducer, events: Sequence[LogEvent]) -> None:
        # Hand every record to the producer first (they batch together), then await each ack.
        acks = []
        for event in events:
            key, value = encode_event(event)
            acks.append(await producer.send(self._topic, value=value, key=key))
        results = await asyncio.gather(*acks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
