"""What the console asks the store for when matchers select alerts: the bounds of a regex's
matches (`match_range`) hold every value it matches, and the alert that inhibits another
(`inhibitor_of`) is the one `inhibited_by` finds among every firing alert, whichever of its
reads (one per narrowed rule, one shared by the others) finds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from router.backends.embedded.backend import EmbeddedBackend
from router.metrics import EngineMetrics
from router.model import Alert, AlertEvent, Status
from router.noise.inhibit import InhibitRule, inhibited_by
from router.noise.matchers import Matcher, MatchType, parse_matchers
from router.noise.muters import labels_of
from router.ui.matching import inhibitor_of, match_range, narrowing
from tests.unit.engine.test_incidents import CTX

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
LABELS: list[dict[str, str]] = [  # oldest first
    {"alertname": "DiskFull", "instance": "db-1", "team": "db", "severity": "warning"},
    {"alertname": "DiskFull", "instance": "db-2", "team": "db", "severity": "warning"},
    {"alertname": "NodeDown", "instance": "db-2", "team": "db", "severity": "critical"},
    {"alertname": "Outage", "team": "web", "severity": "critical"},
    {"alertname": "Outage", "team": "db", "severity": "critical"},
    {"alertname": "CpuHigh", "instance": "db-1", "team": "db", "severity": "warning"},
    {"alertname": "Watchdog"},
    {"alertname": "Resolved", "team": "db", "severity": "critical"},
]
RULE_SETS: list[list[dict[str, Any]]] = [
    [  # each narrowed by an equality: one read each
        {"source_matchers": ['alertname="NodeDown"'],
         "target_matchers": ['alertname="DiskFull"'], "equal": ["instance"]},
        {"source_matchers": ['severity=~"crit.*"'],
         "target_matchers": ['alertname="DiskFull"'], "equal": ["team"]},
    ],
    [  # none narrowed: one shared read, then again for the rules before the one it found
        {"source_matchers": ['alertname=~"NodeDown|Ghost"'],
         "target_matchers": ['alertname=~"DiskFull|CpuHigh"']},
        {"source_matchers": ['severity=~"crit.*"'], "target_matchers": ['severity=~".+"']},
        {"source_matchers": ['alertname!~"Watchdog"'], "target_matchers": ['team="db"']},
    ],
    [  # a target matching both sides: sources matching both are disregarded
        {"source_matchers": ['severity=~"critical|warning"'],
         "target_matchers": ['severity="warning"'], "equal": ["team"]},
        {"source_matchers": ['team="db"'], "target_matchers": ['team="db"']},
    ],
    [  # a narrowed rule after a broad one, a label missing on both sides, nothing firing
        {"source_matchers": ['alertname="Ghost"'], "target_matchers": ['alertname=~".+"']},
        {"source_matchers": ['team=~"w.*"'], "target_matchers": ['alertname="Watchdog"']},
        {"source_matchers": ['alertname="Outage"'], "target_matchers": ['alertname=~".+"'],
         "equal": ["instance"]},
    ],
]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EmbeddedBackend]:
    backend = EmbeddedBackend(tmp_path / "router.db", CTX, EngineMetrics(CollectorRegistry()))
    await backend.start()
    alerts = [Alert(source="alertmanager", fingerprint=f"fp{n}", name=labels["alertname"],
                    labels=labels, starts_at=T0 + n * timedelta(minutes=1),
                    received_at=T0 + n * timedelta(minutes=1),
                    status=Status.RESOLVED if labels["alertname"] == "Resolved"
                    else Status.FIRING,
                    ends_at=T0 + timedelta(minutes=30) if labels["alertname"] == "Resolved"
                    else None)
              for n, labels in enumerate(LABELS)]
    await backend.log.append([AlertEvent(alert=a) for a in alerts])
    try:
        yield backend
    finally:
        await backend.stop()


def reference(target: Alert, firing: list[Alert], rules: list[InhibitRule]) -> str | None:
    """The fingerprint of the first firing alert (latest first) whose labels `inhibited_by`
    names as the source."""
    found = inhibited_by(labels_of(target), [labels_of(a) for a in firing], rules)
    if found is None:
        return None
    return next(a.fingerprint for a in firing if dict(labels_of(a)) == found.source)


@pytest.mark.parametrize("rule_set", range(len(RULE_SETS)))
async def test_the_inhibitor_is_the_one_inhibited_by_finds_among_every_firing_alert(
        store: EmbeddedBackend, rule_set: int) -> None:
    rules = [InhibitRule.model_validate(r) for r in RULE_SETS[rule_set]]
    firing = await store.current_alerts(status="firing")  # latest first
    assert len(firing) == len(LABELS) - 1
    answers = {}
    for target in firing:
        found = await inhibitor_of(store, target, rules)
        answers[target.fingerprint] = found.fingerprint if found else None
    assert answers == {t.fingerprint: reference(t, firing, rules) for t in firing}
    assert any(answers.values()), "a rule set that inhibits nothing tests little"


async def test_a_resolved_alert_has_no_inhibitor(store: EmbeddedBackend) -> None:
    [resolved] = await store.current_alerts(status="resolved")
    rules = [InhibitRule.model_validate({"source_matchers": ['alertname="Outage"']})]
    assert await inhibitor_of(store, resolved, rules) is None


VALUES = ["", "a", "api", "api-1", "api-10", "apj", "b", "ClusterDown", "NodeDown", "NodeDownX",
          "node", "NODE", "Node", "prod", "stage", "staging", "svc1", "svc19", "svc2", "x0", "x9",
          "x10", "é", "éa", "ü-1", "\U0010ffff", "api-\U0010ffff", "z" * 100, "api-" + "z" * 100]


@pytest.mark.parametrize(("pattern", "excluded"), [
    ("api-.*", "apj"), ("NodeDown|ClusterDown", "a"), ("svc1.*", "svc2"), ("x[0-9]+", "a"),
    ("(?i)node", "prod"), ("prod|stage", "a"), ("é.*", "a"), ("api-1|", "b"),
    ("api-\\d+", "b"), (".*api", None), (".*", None), (".+", None),
])
def test_a_regex_s_bounds_hold_every_value_it_matches(pattern: str,
                                                      excluded: str | None) -> None:
    matcher = Matcher.of("n", pattern, MatchType.REGEX)
    bounds = match_range(pattern)
    if excluded is None:
        assert bounds is None  # nothing to narrow by
        return
    assert bounds is not None
    low, high = bounds
    for value in VALUES:
        if matcher.matches_value(value):
            assert low <= value.encode() <= high, (pattern, value)
    assert not low <= excluded.encode() <= high  # and they do narrow


def test_regex_matchers_narrow_by_their_bounds_the_others_not() -> None:
    narrow = narrowing(parse_matchers('a=~"api-.*", b!~"x.*", c=~".*", d="v", e=~"p|q"'))
    assert [name for name, *_ in narrow.ranges] == ["a", "e"]
    assert narrow.labels == (("d", "v"),)
