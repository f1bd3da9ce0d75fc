"""The console's filtered and summary reads, the same answers on both backends (issue 17).

`alert`, `alert_search`, `alert_counts`, `alerts_matching`, `urgent_incidents` and
`incident_counts` of
router.backends.base.Backend, against a real SQLite file and the real broker: the alerts and
incidents go in through the log and the engine, in process, and are read back through the
backend as the console reads them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from router.backends.base import Backend
from router.backends.embedded.backend import EmbeddedBackend
from router.backends.filters import AlertQuery
from router.backends.kafka.backend import KafkaBackend
from router.config import KafkaBackendConfig
from router.metrics import EngineMetrics
from router.model import Alert, AlertEvent, CommandEvent, Severity, Status
from router.noise.matchers import parse_matchers
from router.noise.muters import labels_of
from tests.kafka.test_kafka_engine import eventually
from tests.unit.engine.test_incidents import CTX, command

M = timedelta(minutes=1)
# Recent: the engine forgets a resolved alert whose resolution is older than its retention
# (1 h) at the group's next timer, and the Kafka alerts view is written from its states.
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - 20 * M


class Clock:
    """The backends' clock: the real time until a test moves it (retention)."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        return self.now or datetime.now(UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
                ) -> AsyncIterator[Backend]:
    backend: EmbeddedBackend | KafkaBackend
    if request.param == "embedded":
        backend = EmbeddedBackend(tmp_path / "router.db", CTX, EngineMetrics(CollectorRegistry()),
                                  clock=clock)
        await backend.start()
    else:  # only this parameter asks for the broker
        cfg: KafkaBackendConfig = request.getfixturevalue("kafka_config")
        backend = KafkaBackend(cfg, CTX, EngineMetrics(CollectorRegistry()), clock=clock)
        await backend.start()
        await backend.wait_ready()
    try:
        yield backend
    finally:
        await backend.stop()


def alert(n: int, severity: Severity | None, team: str | None, service: str,
          status: Status = Status.FIRING, labels: dict[str, str] | None = None) -> Alert:
    """Alert n started n minutes after T0 (resolved half a minute later): a higher n is
    newer. In group g<n % 3>."""
    return Alert(source="generic" if n % 4 == 3 else "alertmanager", fingerprint=f"fp{n:02}",
                 status=status, name=f"A{n}", labels=labels or {}, starts_at=T0 + n * M,
                 received_at=T0 + n * M,
                 ends_at=T0 + n * M + M / 2 if status is Status.RESOLVED else None,
                 severity=severity, team=team, service=service, group_key=f"g{n % 3}")


ALERTS = [
    alert(0, Severity.SEV1, "db", "orders", labels={"env": "prod"}),
    alert(1, Severity.SEV2, "db", "orders",  # a label wins over the classified field
          labels={"env": "prod", "team": "override"}),
    alert(2, Severity.SEV2, "web", "shop"),
    alert(3, Severity.SEV3, "db", "billing"),
    alert(4, None, None, "shop"),  # no rule classified it
    alert(5, Severity.SEV2, "db", "orders", Status.RESOLVED),
    alert(6, Severity.SEV1, "web", "orders", labels={"env": "prod", "alertname": "Renamed"}),
    alert(7, Severity.SEV2, "db", "orders"),
]


async def load_alerts(store: Backend) -> None:
    await store.log.append([AlertEvent(alert=a) for a in ALERTS])
    await store.engine.drained()

    async def all_there() -> bool:  # the Kafka view is written by the engine, then tailed
        return sum((await store.alert_counts("status", AlertQuery())).values()) == len(ALERTS)

    await eventually(all_there)


def names(alerts: list[Alert]) -> list[str]:
    return [a.name for a in alerts]


@pytest.mark.parametrize(("query", "expect"), [
    (AlertQuery(), ["A7", "A6", "A5", "A4", "A3", "A2", "A1", "A0"]),  # newest first
    (AlertQuery(team="db"), ["A7", "A5", "A3", "A1", "A0"]),
    (AlertQuery(team="db", severity="SEV2"), ["A7", "A5", "A1"]),
    (AlertQuery(team="db", severity="SEV2", status="firing"), ["A7", "A1"]),
    (AlertQuery(service="shop"), ["A4", "A2"]),
    (AlertQuery(source="generic"), ["A7", "A3"]),
    (AlertQuery(group_key="g1"), ["A7", "A4", "A1"]),
    (AlertQuery(severity="SEV4"), []),
    # Labels as silences see them: the alert's own, else alertname/severity/service/team.
    (AlertQuery(labels=(("env", "prod"),)), ["A6", "A1", "A0"]),
    (AlertQuery(labels=(("env", "prod"), ("severity", "SEV1"))), ["A6", "A0"]),
    (AlertQuery(labels=(("team", "db"),)), ["A7", "A5", "A3", "A0"]),
    (AlertQuery(labels=(("team", "override"),)), ["A1"]),
    (AlertQuery(labels=(("alertname", "A3"),)), ["A3"]),
    (AlertQuery(labels=(("alertname", "A6"),)), []),  # its label says Renamed
    (AlertQuery(labels=(("alertname", "Renamed"),), status="firing"), ["A6"]),
    (AlertQuery(labels=(("env", ""),)), []),  # a missing label is not an empty one here
    # Label values within bounds (UTF-8, byte order), a missing label as "".
    (AlertQuery(ranges=(("env", b"pr", b"prz"),)), ["A6", "A1", "A0"]),
    (AlertQuery(ranges=(("team", b"d", b"e"),)), ["A7", "A5", "A3", "A0"]),
    (AlertQuery(ranges=(("alertname", b"A5", b"A7"),)), ["A7", "A5"]),
    (AlertQuery(ranges=(("severity", b"SEV1", b"SEV1"),)), ["A6", "A0"]),
    (AlertQuery(ranges=(("env", b"", b"a"),)), ["A7", "A5", "A4", "A3", "A2"]),
    (AlertQuery(ranges=(("team", b"", b""),), labels=(("service", "shop"),)), ["A4"]),
])
async def test_alert_search_filters_by_every_field_newest_first(
        store: Backend, query: AlertQuery, expect: list[str]) -> None:
    await load_alerts(store)
    found = await store.alert_search(query, limit=100)
    assert names(found.items) == expect
    assert found.total == len(expect) and found.next_cursor is None
    assert set(expect) == {a.name for a in ALERTS if query.keeps(a)}  # one definition


async def test_alert_search_pages_a_filter_without_gaps_or_repeats(store: Backend) -> None:
    await load_alerts(store)
    query = AlertQuery(team="db")
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.alert_search(query, limit=2, cursor=cursor)
        assert page.total == 5 and len(page.items) <= 2
        seen += names(page.items)
        if (cursor := page.next_cursor) is None:
            break
    assert seen == ["A7", "A5", "A3", "A1", "A0"]


async def test_alert_counts_by_field_within_a_filter(store: Backend) -> None:
    await load_alerts(store)
    everything = AlertQuery()
    assert await store.alert_counts("severity", everything) == {
        "SEV1": 2, "SEV2": 4, "SEV3": 1, "": 1}
    assert await store.alert_counts("status", everything) == {"firing": 7, "resolved": 1}
    # What intake's active-alert cap asks every second (Kafka answers it from per-group counts).
    assert await store.alert_counts("status", AlertQuery(status="firing")) == {"firing": 7}
    assert await store.alert_counts("group_key", AlertQuery(team="db")) == {
        "g0": 2, "g1": 2, "g2": 1}
    assert await store.alert_counts("team", AlertQuery(severity="SEV1")) == {"db": 1, "web": 1}
    assert await store.alert_counts("service", AlertQuery(team="nobody")) == {}
    assert await store.alert_counts("severity", AlertQuery(labels=(("env", "prod"),))) == {
        "SEV1": 2, "SEV2": 1}


@pytest.mark.parametrize(("query", "matchers", "expect"), [
    (AlertQuery(), 'env=~"pr.*"', ["A6", "A1", "A0"]),
    (AlertQuery(status="firing"), 'alertname!~"A[0-4]"', ["A7", "A6"]),  # A6 is Renamed
    (AlertQuery(status="firing"), 'alertname=~"Renamed|A2"', ["A6", "A2"]),
    (AlertQuery(team="db"), 'team=~"over.*"', ["A1"]),  # the label, not the field
    (AlertQuery(), 'severity=~"SEV[12]", service!~"orders"', ["A2"]),
    (AlertQuery(labels=(("env", "prod"),)), 'team=~"db|web"', ["A6", "A0"]),
    (AlertQuery(status="firing"), 'env=""', ["A7", "A4", "A3", "A2"]),  # missing matches ""
    (AlertQuery(source="generic"), 'service=~".+"', ["A7", "A3"]),
    (AlertQuery(), 'nothing=~".+"', []),
    (AlertQuery(ranges=(("service", b"o", b"p"),)), 'env=~"prod"', ["A6", "A1", "A0"]),
])
async def test_alerts_matching_tests_labels_as_silences_see_them_newest_first(
        store: Backend, query: AlertQuery, matchers: str, expect: list[str]) -> None:
    await load_alerts(store)
    test = parse_matchers(matchers)
    found = await store.alerts_matching(query, test.matches, limit=100)
    assert names(found.items) == expect
    assert found.total == len(expect) and found.next_cursor is None
    assert set(expect) == {a.name for a in ALERTS  # one definition: labels_of
                           if query.keeps(a) and test.matches(labels_of(a))}


async def test_alerts_matching_returns_the_newest_few_and_counts_them_all(
        store: Backend) -> None:
    await load_alerts(store)
    seen: dict[str, Mapping[str, str]] = {}

    def everything(labels: Mapping[str, str]) -> bool:
        seen[labels["alertname"]] = dict(labels)
        return True

    found = await store.alerts_matching(AlertQuery(), everything, limit=3)
    assert names(found.items) == ["A7", "A6", "A5"] and found.total == len(ALERTS)
    # What `keeps` was shown is what silences see, for every alert (and only labels).
    assert seen == {labels_of(a)["alertname"]: labels_of(a) for a in ALERTS}
    assert (await store.alerts_matching(AlertQuery(), everything, limit=0)).items == []
    none = await store.alerts_matching(AlertQuery(status="firing"), lambda _: False)
    assert (none.items, none.total) == ([], 0)


async def test_one_alert_by_key(store: Backend) -> None:
    await load_alerts(store)
    found = await store.alert("generic:fp03")
    assert found is not None and (found.name, found.team) == ("A3", "db")
    assert await store.alert("alertmanager:fp03") is None  # the source is part of the key
    assert await store.alert("alertmanager:nope") is None


async def test_urgent_incidents_worst_severity_then_longest_open_and_counts(
        store: Backend) -> None:
    declared = [("SEV3", 0), ("SEV1", 5), ("SEV1", 1), ("SEV2", 2), ("SEV1", 3)]
    await store.log.append([
        command("declare", minute, group_key=f"manual:{n}", title=f"T{n}", severity=severity)
        for n, (severity, minute) in enumerate(declared)])
    await store.engine.drained()

    async def opened() -> bool:
        return len(await store.incidents(status="open")) == len(declared)

    await eventually(opened)
    ids = {i.title: i.id for i in await store.incidents(status="open")}
    await store.log.append([command("resolve", 10, ids["T4"], group_key="manual:4")])
    await store.engine.drained()

    async def resolved() -> bool:
        return len(await store.incidents(status="resolved")) == 1

    await eventually(resolved)
    assert [i.title for i in await store.urgent_incidents()] == ["T2", "T1", "T3", "T0"]
    assert [i.title for i in await store.urgent_incidents(limit=2)] == ["T2", "T1"]
    assert [i.title for i in await store.urgent_incidents(limit=2, offset=2)] == ["T3", "T0"]
    assert await store.urgent_incidents(offset=4) == []
    assert await store.incident_counts(status="open") == {"SEV1": 2, "SEV2": 1, "SEV3": 1}
    assert await store.incident_counts(status="resolved") == {"SEV1": 1}
    assert await store.incident_counts() == {"SEV1": 3, "SEV2": 1, "SEV3": 1}


def order(name: str, at: datetime, group_key: str, incident_id: str | None = None,
          **args: str) -> CommandEvent:
    return CommandEvent(command=name, incident_id=incident_id, group_key=group_key,
                        actor="api", at=at, args=args)


async def test_resolved_incidents_leave_after_the_retention_age_and_open_ones_stay(
        store: Backend, clock: Clock) -> None:
    assert isinstance(store, EmbeddedBackend | KafkaBackend)
    age = timedelta(days=30)  # closed_incidents_max_age, the default of both backends
    names = ("closed", "open", "closed-late")
    await store.log.append([order("declare", T0, f"manual:{n}", title=n, severity="SEV3")
                            for n in names])
    await store.engine.drained()

    async def listed(expect: set[str]) -> bool:
        return {i.group_key for i in await store.incidents()} == expect

    await eventually(lambda: listed({f"manual:{n}" for n in names}))
    ids = {i.group_key: i.id for i in await store.incidents()}
    await store.log.append([
        order("resolve", T0 + M, "manual:closed", ids["manual:closed"]),
        order("resolve", T0 + 10 * age / 30, "manual:closed-late", ids["manual:closed-late"]),
    ])
    clock.now = T0 + age + 2 * age / 30  # past the age of the first resolve, not the second
    await store.engine.drained()

    async def reminded() -> bool:
        # The engines' last word on a resolved incident: the post-mortem reminder (48 h).
        return len([i for i in await store.incidents(status="resolved")
                    if any(e.kind == "postmortem" for e in i.timeline)]) == 2

    await eventually(reminded)

    await store.retention.prune()

    await eventually(lambda: listed({"manual:open", "manual:closed-late"}))
    assert await store.incident(ids["manual:closed"]) is None
    clock.now += age
    await store.retention.prune()
    await eventually(lambda: listed({"manual:open"}))
