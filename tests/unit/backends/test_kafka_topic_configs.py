"""The topic-level settings `kafka init` and topic creation send, from the config alone."""

from __future__ import annotations

from datetime import timedelta

from router.backends.kafka.topics import topic_configs, topic_names
from router.config import KafkaBackendConfig


def test_defaults_keep_the_log_a_week_and_dead_letters_and_records_30_days() -> None:
    cfg = KafkaBackendConfig(bootstrap_servers=["127.0.0.1:9092"], topic_prefix="p")
    t = topic_names("p")
    assert topic_configs(cfg) == {
        t.alerts: {"cleanup.policy": "delete", "retention.ms": "604800000"},
        t.state: {"cleanup.policy": "compact"},
        t.notifications: {"cleanup.policy": "delete", "retention.ms": "604800000"},
        t.notifications_dlq: {"cleanup.policy": "compact,delete", "retention.ms": "2592000000"},
        t.alerts_view: {"cleanup.policy": "compact"},
        t.delivery_records: {"cleanup.policy": "compact,delete", "retention.ms": "2592000000"},
        t.incidents_view: {"cleanup.policy": "compact"},
    }


def test_an_age_of_zero_keeps_records_forever() -> None:
    zero = timedelta(0)
    cfg = KafkaBackendConfig(bootstrap_servers=["127.0.0.1:9092"], topic_prefix="p",
                             log_retention=zero, notifications_retention=zero,
                             dead_letters_max_age=zero, delivery_records_max_age=zero)
    t = topic_names("p")
    configs = topic_configs(cfg)
    assert configs[t.alerts]["retention.ms"] == configs[t.notifications]["retention.ms"] == "-1"
    assert configs[t.notifications_dlq] == configs[t.delivery_records] == {
        "cleanup.policy": "compact"}
