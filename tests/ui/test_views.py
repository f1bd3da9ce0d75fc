"""The console's pure view functions, table-tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from router.incidents import Incident, IncidentStatus
from router.model import Alert, Severity, Status
from router.noise.matchers import parse_matchers
from router.noise.muters import labels_of
from router.noise.silences import Silence, silences_for
from router.policy import SeverityPolicies
from router.ui.views import (
    AlertFilter,
    PasteError,
    group_alerts,
    incident_rows,
    pasted_alert,
    severity_counts,
    silence_batches,
    sla,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)


@pytest.mark.parametrize(("done", "now", "state", "text"), [
    (None, T0 + 5 * M, "ok", "10 min left"),
    (None, T0 + 12 * M, "warn", "3 min left"),  # within the last quarter of 15 min
    (None, T0 + 15 * M, "breached", "breached 0 s ago"),
    (None, T0 + 20 * M, "breached", "breached 5 min ago"),
    (T0 + 14 * M, T0 + 60 * M, "met", "met"),
    (T0 + 17 * M, T0 + 60 * M, "missed", "missed by 2 min"),
])
def test_sla_time_left(done: datetime | None, now: datetime, state: str, text: str) -> None:
    got = sla(T0, done, 15 * M, now)
    assert (got.state, got.text) == (state, text)


def test_no_sla_for_a_severity_without_one() -> None:
    assert sla(T0, None, None, T0).state == "none"


def _incident(n: int, severity: Severity, opened: int, resolved: int | None = None) -> Incident:
    return Incident(id=f"INC-20260105-{n}", group_key=f"g{n}", title=f"t{n}", severity=severity,
                    channel="#inc", opened_at=T0 + opened * M,
                    status=IncidentStatus.RESOLVED if resolved is not None
                    else IncidentStatus.INVESTIGATING,
                    resolved_at=T0 + resolved * M if resolved is not None else None)


def test_open_incidents_first_by_severity_then_oldest_then_resolved_newest() -> None:
    rows = incident_rows([
        _incident(1, Severity.SEV3, 0),
        _incident(2, Severity.SEV1, 10),
        _incident(3, Severity.SEV1, 5),
        _incident(4, Severity.SEV1, 0, resolved=20),
        _incident(5, Severity.SEV4, 0, resolved=30),
    ], SeverityPolicies(), T0 + 12 * M)
    assert [r.incident.id[-1] for r in rows] == ["3", "2", "1", "5", "4"]
    assert rows[0].ack.text == "8 min left"  # SEV1: 15 min to acknowledge
    assert rows[2].resolve.state == "ok"


def _alert(name: str, severity: Severity, group: str, status: Status = Status.FIRING,
           minute: int = 0, **fields: object) -> Alert:
    return Alert(source="alertmanager", fingerprint=f"{name}{minute}", status=status, name=name,
                 starts_at=T0 + minute * M, received_at=T0, severity=severity, group_key=group,
                 **fields)


def test_alerts_group_by_group_key_worst_first_and_rows_are_capped() -> None:
    alerts = [
        _alert("a", Severity.SEV3, "g3", minute=1),
        _alert("b", Severity.SEV1, "g1", minute=2),
        _alert("c", Severity.SEV2, "g1", minute=3),
        _alert("d", Severity.SEV1, "g0", status=Status.RESOLVED),
    ]
    groups, hidden = group_alerts(alerts)
    assert [g.key for g in groups] == ["g1", "g3", "g0"]  # firing before all-resolved
    assert [a.name for a in groups[0].alerts] == ["b", "c"]
    assert hidden == 0
    groups, hidden = group_alerts(alerts, limit=2)
    assert [len(g.alerts) for g in groups] == [2] and hidden == 2


@pytest.mark.parametrize(("query", "kept"), [
    ({}, {"a", "b"}),
    ({"severity": "SEV1"}, {"b"}),
    ({"team": "db"}, {"a"}),
    ({"service": "api", "severity": "SEV1"}, set()),
])
def test_alert_filters(query: dict[str, str], kept: set[str]) -> None:
    alerts = [_alert("a", Severity.SEV3, "g", team="db", service="api"),
              _alert("b", Severity.SEV1, "g", team="web", service="web")]
    f = AlertFilter.of(query)
    assert {a.name for a in alerts if f.keeps(a)} == kept


@pytest.mark.parametrize(("counts", "expect"), [
    ({}, []),
    ({"SEV3": 2, "SEV1": 1, "": 4}, [("SEV1", 1), ("SEV3", 2), ("none", 4)]),
    ({"SEV2": 0, "SEV4": 9}, [("SEV4", 9)]),
])
def test_severity_counts_worst_first_unclassified_last(counts: dict[str, int],
                                                      expect: list[tuple[str, int]]) -> None:
    assert severity_counts(counts) == expect


def _silence(ident: str, matchers: str) -> Silence:
    return Silence(id=ident, matchers=parse_matchers(matchers), starts_at=T0 - M,
                   ends_at=T0 + 60 * M, created_by="t", comment="c", updated_at=T0)


def test_silence_batches_check_each_alert_against_every_silence_that_can_mute_it() -> None:
    silences = [
        _silence("by-instance", 'instance="i1"'),
        _silence("by-team", 'team="db", env=~"prod|stage"'),  # a classified field
        _silence("regex-only", 'alertname=~"B.*"'),  # no equality: kept for every alert
        _silence("empty-value", 'instance="", alertname="a"'),  # "" matches a missing label
        _silence("other", 'instance="i9"'),
    ]
    alerts = [
        _alert("a", Severity.SEV1, "g", team="db", labels={"instance": "i1", "env": "prod"}),
        _alert("b", Severity.SEV2, "g", minute=1, labels={"instance": "i2"}),
        _alert("Bx", Severity.SEV2, "g", minute=2, labels={"instance": "i1"}),
        _alert("a", Severity.SEV3, "g", minute=3),
    ]
    batches = silence_batches(alerts, silences)
    assert sorted(a.fingerprint for batch, _ in batches for a in batch) == sorted(
        a.fingerprint for a in alerts)
    for batch, candidates in batches:
        assert [s.id for s in candidates] == [s.id for s in silences if s in candidates]
        for a in batch:  # the same answer as checking every silence
            assert silences_for(labels_of(a), candidates, T0) == silences_for(
                labels_of(a), silences, T0)
    muted = {a.fingerprint: silences_for(labels_of(a), c, T0) for b, c in batches for a in b}
    assert muted == {"a0": ("by-instance", "by-team"), "b1": (), "Bx2": ("by-instance",
                     "regex-only"), "a3": ("empty-value",)}


@pytest.mark.parametrize(("text", "value", "expect"), [
    ('{"labels": {"alertname": "X", "env": "prod"}, "annotations": {"summary": "s"}}', "",
     {"name": "X", "labels": {"alertname": "X", "env": "prod"}, "annotations": {"summary": "s"}}),
    ("alertname: X\nenv: prod", "0.3",
     {"name": "X", "labels": {"alertname": "X", "env": "prod"}, "value": 0.3}),
    ('alertname=X\nenv="prod"', "", {"name": "X", "labels": {"alertname": "X", "env": "prod"}}),
    ("name: Y\nlabels: {team: db}\nvalue: 2", "",
     {"name": "Y", "labels": {"team": "db"}, "value": 2}),
])
def test_a_pasted_alert(text: str, value: str, expect: dict[str, object]) -> None:
    assert pasted_alert(text, value) == expect


@pytest.mark.parametrize(("text", "value", "message"), [
    ("env=prod", "", "needs a name"),
    ("just words", "", "expected label=value"),
    ("labels: [1, 2]", "", "labels must be a mapping"),
    ("alertname=X", "lots", "is not a number"),
])
def test_a_pasted_alert_that_is_not_one(text: str, value: str, message: str) -> None:
    with pytest.raises(PasteError, match=message):
        pasted_alert(text, value)
