"""Fixtures of the contract suite: a recording receiver, the backend under test, router processes.

The Kafka fixtures come from tests/kafka/fixtures.py, registered for the whole suite by
tests/conftest.py: one real session broker for every directory, never a skip.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.contract.harness import RouterProcess, WebhookSink, logs_of, router_config


@dataclass(frozen=True)
class BackendUnderTest:
    name: str  # "embedded" or "kafka"
    settings: dict[str, object]  # the `backend:` section every router of the test shares

    @property
    def scales_out(self) -> bool:
        # Two embedded processes on one SQLite file are not supported: each would run its own
        # engine over the same log. The embedded backend is one process; scenarios that need
        # two routers post to that one process instead.
        return self.name == "kafka"


def kafka_settings(bootstrap: str, prefix: str) -> dict[str, object]:
    return {
        "type": "kafka",
        "bootstrap_servers": [bootstrap],
        "topic_prefix": prefix,
        "group_id": prefix,
        "partitions": 4,
        "replication_factor": 1,
        "produce_timeout_seconds": 3.0,
    }


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> BackendUnderTest:
    if request.param == "embedded":
        return BackendUnderTest("embedded", {"type": "embedded",
                                             "path": str(tmp_path / "router.db")})
    # Only the kafka parameter asks for the broker, so embedded runs never start one.
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    prefix = request.getfixturevalue("kafka_topic_prefix")
    return BackendUnderTest("kafka", kafka_settings(bootstrap, prefix))


@pytest.fixture
def kafka_backend(request: pytest.FixtureRequest) -> BackendUnderTest:
    """The Kafka backend alone, for the scenarios that have no embedded counterpart."""
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    prefix = request.getfixturevalue("kafka_topic_prefix")
    return BackendUnderTest("kafka", kafka_settings(bootstrap, prefix))


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    receiver = WebhookSink()
    receiver.start()
    yield receiver
    receiver.close()


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """No rules: every alert gets the default classification (severity from its label)."""
    path = tmp_path / "rules"
    path.mkdir()
    return path


RouterFactory = Callable[[BackendUnderTest, int], list[RouterProcess]]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def start_routers(request: pytest.FixtureRequest, tmp_path: Path, sink: WebhookSink,
                  rules_dir: Path) -> Iterator[RouterFactory]:
    """`start_routers(backend, n)`: n router processes on `backend`, started and ready.

    Torn down with SIGKILL (every test has its own database or topics); the log tails are
    printed when the test failed.
    """
    started: list[RouterProcess] = []

    def make(backend: BackendUnderTest, n: int) -> list[RouterProcess]:
        config = router_config(backend.settings, sink.url, rules_dir)
        routers = [RouterProcess(f"router-{len(started) + i}", tmp_path / "routers", config)
                   for i in range(n)]
        started.extend(routers)
        for r in routers:
            r.start()
        for r in routers:  # an earlier one may be rebalancing since a later one joined
            r.wait_ready(60)
        return routers

    yield make
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(logs_of(started))
    for r in started:
        r.kill()
