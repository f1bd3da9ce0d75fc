"""A real Kafka broker for the tests in this directory (see tools/kafka/README.md).

One broker per session, started on first use (the jars are fetched into the cache if missing).
`KAFKA_BOOTSTRAP=host:port` uses an existing broker instead. A broker that cannot start fails
the tests with its log tail; it never skips them.

A module whose tests kill the broker, or must not depend on what earlier tests did to the
session's (a restart leaves leaders and coordinators moving for a while), asks for
`module_kafka_broker` instead: a broker process of its own, for that module only.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from router.config import KafkaBackendConfig

ROOT = Path(__file__).resolve().parents[2]


def _load_broker_module() -> ModuleType:
    path = ROOT / "tools" / "kafka" / "broker.py"
    spec = importlib.util.spec_from_file_location("incident_router_kafka_broker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


kafka_tools = _load_broker_module()
KafkaBroker = kafka_tools.KafkaBroker
BrokerError = kafka_tools.BrokerError


def _start(broker: KafkaBroker) -> str:
    try:
        bootstrap: str = broker.start()
    except BrokerError as exc:
        failure = str(exc)
    else:
        return bootstrap
    broker.close()
    pytest.fail(f"the test Kafka broker did not start: {failure}", pytrace=False)


@pytest.fixture(scope="session")
def _session_kafka() -> Iterator[KafkaBroker | None]:
    """The session's own broker, or None when KAFKA_BOOTSTRAP points at an existing one."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        yield None
        return
    broker = KafkaBroker()
    _start(broker)
    yield broker
    broker.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(_session_kafka: KafkaBroker | None) -> str:
    if _session_kafka is None:
        return os.environ["KAFKA_BOOTSTRAP"]
    return str(_session_kafka.bootstrap)


@pytest.fixture
def kafka_broker(_session_kafka: KafkaBroker | None) -> Iterator[KafkaBroker]:
    """A broker the test may stop, kill and restart.

    The session broker when we own it (brought back up afterwards if the test left it down),
    else a dedicated one for this test, since an external broker cannot be stopped from here.
    """
    if _session_kafka is None:
        broker = KafkaBroker()
        _start(broker)
        yield broker
        broker.close()
        return
    yield _session_kafka
    if not _session_kafka.running():
        _start(_session_kafka)


@pytest.fixture(scope="module")
def _module_kafka() -> Iterator[KafkaBroker]:
    broker = KafkaBroker()
    _start(broker)
    yield broker
    broker.close()


@pytest.fixture
def module_kafka_broker(_module_kafka: KafkaBroker) -> Iterator[KafkaBroker]:
    """The test module's own broker, which its tests may kill and restart; up again (same
    port and data) for the next test if one left it down."""
    if not _module_kafka.running():
        _start(_module_kafka)
    yield _module_kafka
    if not _module_kafka.running():
        _start(_module_kafka)


@pytest.fixture
def kafka_topic_prefix(request: pytest.FixtureRequest) -> str:
    """Unique per test, so tests never see each other's topics or consumer groups."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:60].strip("-")
    return f"t-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kafka_config(kafka_bootstrap: str, kafka_topic_prefix: str) -> KafkaBackendConfig:
    """Backend config for the session broker: 3 partitions, a short produce timeout."""
    return KafkaBackendConfig(
        bootstrap_servers=[kafka_bootstrap],
        topic_prefix=kafka_topic_prefix,
        group_id=kafka_topic_prefix,
        partitions=3,
        replication_factor=1,
        produce_timeout_seconds=5.0,
    )
