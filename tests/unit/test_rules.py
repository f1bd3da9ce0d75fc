"""Classification rules: matching, thresholds, continue, defaults, group keys, every error."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from router.config import Config
from router.model import Alert, Severity, Status
from router.rules import (
    Matcher,
    RuleError,
    RuleSet,
    check_rules,
    load_rules,
    parse_matcher,
    rule_files,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_config(**extra: Any) -> Config:
    data: dict[str, Any] = {"receivers": [{"name": "log", "type": "log"}], **extra}
    return Config.model_validate(data)


CONFIG = make_config()


def make_alert(
    name: str = "APIHighErrorRate",
    source: str = "alertmanager",
    labels: dict[str, str] | None = None,
    value: float | None = None,
    annotations: dict[str, str] | None = None,
) -> Alert:
    return Alert(
        source=source,
        fingerprint="f1",
        status=Status.FIRING,
        name=name,
        labels=labels if labels is not None else {"alertname": name},
        annotations=annotations or {},
        value=value,
        starts_at=T0,
        received_at=T0,
    )


def write_rules(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def ruleset(tmp_path: Path, text: str, config: Config = CONFIG) -> RuleSet:
    return load_rules(write_rules(tmp_path, {"rules.yaml": text}), config)


def load_problems(tmp_path: Path, text: str, config: Config = CONFIG) -> list[str]:
    with pytest.raises(RuleError) as info:
        ruleset(tmp_path, text, config)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- matchers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label", "op", "value"),
    [
        ('alertname="APIHighErrorRate"', "alertname", "=", "APIHighErrorRate"),
        ('env!="prod"', "env", "!=", "prod"),
        ('env=~"prod|production"', "env", "=~", "prod|production"),
        ('env!~"dev.*"', "env", "!~", "dev.*"),
        ("env=prod", "env", "=", "prod"),
        ('  env  =  "prod"  ', "env", "=", "prod"),
        ('summary="say \\"hi\\""', "summary", "=", 'say "hi"'),
        ('path=~"a\\\\.b"', "path", "=~", "a\\.b"),
        ('env=""', "env", "=", ""),
    ],
)
def test_parse_matcher(text: str, label: str, op: str, value: str) -> None:
    m = parse_matcher(text)
    assert (m.label, m.op, m.value) == (label, op, value)


@pytest.mark.parametrize("text", ["env", "env==prod", '1env="x"', 'env="a"b"', 'env="x'])
def test_parse_matcher_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_matcher(text)


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('env="prod"', {"env": "prod"}, True),
        ('env="prod"', {"env": "production"}, False),
        ('env="prod"', {}, False),
        ('env=""', {}, True),  # a missing label is the empty string, as in Alertmanager
        ('env!="prod"', {"env": "dev"}, True),
        ('env!="prod"', {}, True),
        ('env!="prod"', {"env": "prod"}, False),
        ('env=~"prod|production"', {"env": "production"}, True),
        ('env=~"prod"', {"env": "production"}, False),  # fully anchored
        ('env=~"prod"', {"env": "preprod"}, False),
        ('env=~".*"', {}, True),
        ('env=~".+"', {}, False),
        ('env!~"dev.*"', {"env": "development"}, False),
        ('env!~"dev.*"', {"env": "prod"}, True),
        ('env!~"dev"', {"env": "devel"}, True),  # anchored: "devel" is not "dev"
        ('env=~"(prod"', {"env": "(prod"}, False),  # a bad regex never matches
    ],
)
def test_matcher_matches(matcher: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(matcher).matches(labels) is expected


def test_matcher_prints_in_alertmanager_syntax() -> None:
    assert str(Matcher("summary", "=", 'say "hi"')) == 'summary="say \\"hi\\""'


# --- thresholds --------------------------------------------------------------------------------

# (op, threshold as written, unit, alert value, matches)
THRESHOLDS = [
    (">", 0.05, "ratio", 0.05, False),  # exactly 5% is not above 5%
    (">", 0.05, "ratio", 0.0500001, True),
    (">=", 0.05, "ratio", 0.05, True),
    (">", "5%", "ratio", 0.05, False),  # "5%" in ratio unit is 0.05 exactly
    (">", "5%", "ratio", 0.051, True),
    (">", "20%", "ratio", 0.20, False),
    (">", "20%", "ratio", 0.2001, True),
    (">", 5, "percent", 5.0, False),
    (">", 5, "percent", 5.01, True),
    (">", "5%", "percent", 5.0, False),
    (">", 20, "percent", 23.4, True),
    (">=", 20, "percent", 20, True),
    ("<", 1, "percent", 1, False),
    ("<", 1, "percent", 0.99, True),
    ("<=", 0.5, "ratio", 0.5, True),
    ("<=", 0.5, "ratio", 0.51, False),
    (">", "15m", "seconds", 900, False),
    (">", "15m", "seconds", 901, True),
    (">", 900, "seconds", 900.5, True),
    (">", "1h", "seconds", 3600, False),
    (">=", 100, "count", 100, True),
    (">", 100, "count", 100, False),
    (">", 0.05, "ratio", None, False),  # no observed value: a threshold rule does not match
]


@pytest.mark.parametrize(("op", "threshold", "unit", "value", "matches"), THRESHOLDS)
def test_thresholds(
    tmp_path: Path, op: str, threshold: object, unit: str, value: float | None, matches: bool
) -> None:
    written = f'"{threshold}"' if isinstance(threshold, str) else threshold
    rs = ruleset(tmp_path, f"""
        rules:
          - name: step
            value: {{op: "{op}", threshold: {written}, unit: {unit}}}
            set: {{severity: SEV1}}
    """)
    got = rs.classify(make_alert(value=value))
    assert (got.rule == "step") is matches
    assert got.severity is (Severity.SEV1 if matches else Severity.SEV3)


def test_ladder_classifies_each_step(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
        rules:
          - name: sev1
            match: {labels: ['alertname="APIHighErrorRate"']}
            value: {op: ">", threshold: 0.20, unit: ratio}
            set: {severity: SEV1}
          - name: sev2
            match: {labels: ['alertname="APIHighErrorRate"']}
            value: {op: ">", threshold: 0.05, unit: ratio}
            set: {severity: SEV2}
    """)
    got = [rs.classify(make_alert(value=v)).severity for v in (0.01, 0.05, 0.07, 0.20, 0.21)]
    assert got == [Severity.SEV3, Severity.SEV3, Severity.SEV2, Severity.SEV2, Severity.SEV1]


# Rule unit, how the rule reads unstated values, the alert's value, what it states, matches.
OBSERVED = [
    # ratio_or_percent: 0..1 is a ratio, above 1 a percentage.
    ("ratio", "ratio_or_percent", 0.061, {}, True),
    ("ratio", "ratio_or_percent", 6.1, {}, True),
    ("ratio", "ratio_or_percent", 0.05, {}, False),
    ("ratio", "ratio_or_percent", 5.0, {}, False),
    ("ratio", "ratio_or_percent", 4.9, {}, False),
    ("percent", "ratio_or_percent", 0.0501, {}, True),
    ("percent", "ratio_or_percent", 5.01, {}, True),
    ("percent", "ratio_or_percent", 0.05, {}, False),
    # A fixed reading converts without rounding errors at the boundary.
    ("ratio", "percent", 5.0, {}, False),
    ("ratio", "percent", 5.1, {}, True),
    ("percent", "ratio", 0.05, {}, False),
    ("percent", "ratio", 0.07, {}, True),
    # No observed_unit: the value is in the rule's unit (6.1 as a ratio is above 5%).
    ("ratio", None, 6.1, {}, True),
    ("ratio", None, 0.05, {}, False),
    # What the alert states wins over the rule's reading.
    ("ratio", "ratio_or_percent", 0.8, {"unit": "percent"}, False),
    ("ratio", "ratio_or_percent", 0.8, {"unit": "%"}, False),
    ("ratio", "percent", 0.061, {"unit": "ratio"}, True),
    ("percent", None, 0.061, {"unit": "ratio"}, True),
    ("ratio", "ratio_or_percent", 0.8, {"unit": "requests"}, True),  # unknown unit: ignored
    # "6.1%" was read as 0.061 by the Alertmanager source: a ratio, whatever the rule says.
    ("percent", "percent", 0.061, {"value": "6.1%"}, True),
    ("percent", None, 0.049, {"value": "4.9%"}, False),
]


@pytest.mark.parametrize(("unit", "observed", "value", "annotations", "matches"), OBSERVED)
def test_observed_unit_and_declared_unit(
    tmp_path: Path, unit: str, observed: str | None, value: float,
    annotations: dict[str, str], matches: bool,
) -> None:
    threshold = "0.05" if unit == "ratio" else "5"
    reading = f", observed_unit: {observed}" if observed else ""
    rs = ruleset(tmp_path, f"""
        rules:
          - name: step
            value: {{op: ">", threshold: {threshold}, unit: {unit}{reading}}}
            set: {{severity: SEV2}}
    """)
    alert = make_alert(value=value, annotations=annotations)
    assert (rs.classify(alert).rule == "step") is matches
    assert rs.rules[0].matches(alert, alert.labels) is matches


def test_a_unit_label_counts_when_there_is_no_unit_annotation(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
        rules:
          - name: step
            value: {op: ">", threshold: 5%, unit: ratio, observed_unit: ratio_or_percent}
            set: {severity: SEV2}
    """)
    labelled = make_alert(value=0.8, labels={"alertname": "X", "unit": "percent"})
    assert rs.classify(labelled).rule is None
    both = make_alert(value=0.8, labels={"alertname": "X", "unit": "percent"},
                      annotations={"unit": "ratio"})
    assert rs.classify(both).rule == "step"


# --- first match, continue, sources ------------------------------------------------------------


def test_first_match_wins(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
        rules:
          - name: first
            match: {labels: ['env="prod"']}
            set: {severity: SEV2, team: a}
          - name: second
            match: {labels: ['env="prod"']}
            set: {severity: SEV1, team: b, service: s}
    """)
    got = rs.classify(make_alert(labels={"alertname": "X", "env": "prod"}))
    assert (got.rule, got.severity, got.team, got.service) == ("first", Severity.SEV2, "a", None)


def test_continue_adds_and_later_rules_override(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
        rules:
          - name: owner
            match: {labels: ['team_hint="payments"']}
            set: {team: payments, severity: SEV3, labels: {tier: backend, owner: pay}}
            continue: true
          - name: not-matching
            match: {labels: ['env="dev"']}
            set: {severity: SEV4}
          - name: prod-is-worse
            match: {labels: ['env="prod"']}
            set: {severity: SEV2, labels: {tier: critical}}
            continue: true
          - name: dashboards
            match: {labels: ['env="prod"']}
            set: {dashboard_url: https://grafana.example.com/d/pay}
          - name: never
            match: {labels: ['env="prod"']}
            set: {severity: SEV1}
    """)
    alert = make_alert(labels={"alertname": "X", "team_hint": "payments", "env": "prod"})
    got = rs.classify(alert)
    assert got.rule == "owner, prod-is-worse, dashboards"
    assert got.severity is Severity.SEV2
    assert got.team == "payments"
    assert got.dashboard_url == "https://grafana.example.com/d/pay"
    assert got.labels == {
        "alertname": "X", "team_hint": "payments", "env": "prod",
        "tier": "critical", "owner": "pay",
    }
    assert alert.labels == {"alertname": "X", "team_hint": "payments", "env": "prod"}
    assert alert.severity is None and alert.rule is None


def test_continue_rule_without_severity_falls_back_to_defaults(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
        rules:
          - name: tag
            set: {team: core}
            continue: true
    """)
    got = rs.classify(make_alert(labels={"alertname": "X", "severity": "critical"}))
    assert (got.rule, got.team, got.severity) == ("tag", "core", Severity.SEV1)


def test_matchers_see_the_original_labels_not_ones_set_earlier(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
        rules:
          - name: add
            set: {labels: {tier: frontend}}
            continue: true
          - name: on-tier
            match: {labels: ['tier="frontend"']}
            set: {severity: SEV1}
    """)
    got = rs.classify(make_alert())
    assert (got.rule, got.severity, got.labels["tier"]) == ("add", Severity.SEV3, "frontend")


@pytest.mark.parametrize(
    ("source_spec", "source", "matches"),
    [
        ("alertmanager", "alertmanager", True),
        ("alertmanager", "cloudwatch", False),
        ("[cloudwatch, generic]", "generic", True),
        ("[cloudwatch, generic]", "alertmanager", False),
    ],
)
def test_source_matching(tmp_path: Path, source_spec: str, source: str, matches: bool) -> None:
    rs = ruleset(tmp_path, f"""
        rules:
          - name: by-source
            match: {{source: {source_spec}, labels: ['alertname="DiskFull"']}}
            set: {{severity: SEV2}}
    """)
    got = rs.classify(make_alert(name="DiskFull", source=source))
    assert (got.rule == "by-source") is matches


def test_alertname_matches_the_alert_name_when_there_is_no_such_label(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
        rules:
          - name: by-name
            match: {labels: ['alertname=~"orders-db-cpu|other"']}
            set: {severity: SEV2}
    """)
    got = rs.classify(make_alert(name="orders-db-cpu", source="generic", labels={}))
    assert got.rule == "by-name"
    assert got.labels == {}


def test_indexed_and_unindexed_rules_keep_file_order(tmp_path: Path) -> None:
    write_rules(tmp_path, {
        "a.yaml": """
            rules:
              - name: generic-env
                match: {labels: ['env="staging"']}
                set: {severity: SEV4}
              - name: by-name
                match: {labels: ['alertname="A"']}
                set: {severity: SEV1}
        """,
        "b.yaml": """
            rules:
              - name: by-regex-name
                match: {labels: ['alertname=~"A|B"', 'env="prod"']}
                set: {severity: SEV2}
              - name: catch-rest
                match: {labels: ['alertname=~".+"']}
                set: {severity: SEV3}
        """,
    })
    rs = load_rules(tmp_path, CONFIG)
    cases = [
        ({"alertname": "A", "env": "staging"}, "generic-env"),
        ({"alertname": "A", "env": "prod"}, "by-name"),
        ({"alertname": "B", "env": "prod"}, "by-regex-name"),
        ({"alertname": "B", "env": "dev"}, "catch-rest"),
        ({"alertname": "C", "env": "prod"}, "catch-rest"),
    ]
    for labels, rule in cases:
        alert = make_alert(name=labels["alertname"], labels=labels)
        assert rs.classify(alert).rule == rule
        # The index gives the same answer as checking every rule in order.
        assert next(r.name for r in rs.rules if r.matches(alert, labels)) == rule


def test_regex_matchers_on_indexed_labels_agree_with_checking_every_rule(tmp_path: Path) -> None:
    # The candidate list leaves out rules whose matchers on indexed labels (alertname, env
    # here) fail for the cached key; the answer must be the same as trying every rule in turn.
    rs = ruleset(tmp_path, """
        rules:
          - name: indexes-env
            match: {labels: ['env="prod"', 'alertname="Z"']}
            set: {severity: SEV4}
          - name: family
            match: {labels: ['alertname=~".*HighErrorRate"', 'env!~"dev|test"']}
            set: {severity: SEV2}
          - name: not-family
            match: {labels: ['alertname!~".*HighErrorRate"', 'env=~"prod|dev"']}
            set: {severity: SEV1}
    """)
    cases = [("HighErrorRate", "prod", "family"), ("APIHighErrorRate", "", "family"),
             ("HighErrorRate", "dev", None), ("Other", "dev", "not-family"),
             ("Other", "staging", None), ("Z", "prod", "indexes-env")]
    for _ in range(2):  # the second round answers from the candidate cache
        for name, env, rule in cases:
            labels = {"alertname": name, **({"env": env} if env else {})}
            alert = make_alert(name=name, labels=labels)
            assert rs.classify(alert).rule == rule, (name, env)
            assert next((r.name for r in rs.rules if r.matches(alert, labels)), None) == rule


# --- defaults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity_label", "expected"),
    [
        ("critical", Severity.SEV1),
        ("CRITICAL", Severity.SEV1),
        ("page", Severity.SEV1),
        ("error", Severity.SEV2),
        ("warning", Severity.SEV3),
        ("info", Severity.SEV4),
        ("none", Severity.SEV4),
        ("disaster", Severity.SEV3),
        (None, Severity.SEV3),
    ],
)
def test_unmatched_severity_from_label_map(
    tmp_path: Path, severity_label: str | None, expected: Severity
) -> None:
    rs = ruleset(tmp_path, "rules: []\n")
    labels = {"alertname": "X"} | ({"severity": severity_label} if severity_label else {})
    got = rs.classify(make_alert(name="X", labels=labels))
    assert (got.severity, got.rule) == (expected, None)


def test_unmatched_alert_defaults(tmp_path: Path) -> None:
    config = make_config(
        severities={"SEV2": {"receivers": ["log"]}},
        severity_label_map={"sev-two": "SEV2"},
    )
    rs = ruleset(tmp_path, "", config)
    got = rs.classify(make_alert(
        name="DiskFull",
        labels={"alertname": "DiskFull", "severity": "sev-two", "team": "db", "service": "pg"},
        annotations={"runbook_url": "https://rb/disk", "dashboard_url": "https://dash/disk"},
    ))
    assert got.severity is Severity.SEV2
    assert got.receivers == ("log",)  # from the severity policy
    assert (got.team, got.service) == ("db", "pg")  # from the team and service labels
    assert (got.runbook_url, got.dashboard_url) == ("https://rb/disk", "https://dash/disk")
    assert got.group_key == "DiskFull|pg"
    assert got.rule is None


def test_source_set_fields_are_kept_when_no_rule_sets_them(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, "")
    alert = make_alert().model_copy(update={"severity": Severity.SEV4, "team": "t"})
    got = rs.classify(alert)
    assert (got.severity, got.team) == (Severity.SEV4, "t")


def test_rule_receivers_replace_policy_receivers(tmp_path: Path) -> None:
    config = make_config(
        receivers=[{"name": "log", "type": "log"}, {"name": "audit", "type": "log"}],
        severities={"SEV1": {"receivers": ["log"]}},
    )
    rs = ruleset(tmp_path, """
        rules:
          - name: audit-only
            match: {labels: ['alertname="Audit"']}
            set: {severity: SEV1, receivers: [audit]}
    """, config)
    assert rs.classify(make_alert(name="Audit")).receivers == ("audit",)
    assert rs.classify(make_alert(name="Other", labels={"severity": "critical"})).receivers == (
        "log",
    )


# --- group keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (None, "APIHighErrorRate|api"),
        ("[alertname, service]", "APIHighErrorRate|api"),
        ("[alertname, service, env]", "APIHighErrorRate|api|prod"),
        ("[alertname, region]", "APIHighErrorRate|"),  # a missing label groups as ""
        ("[team, severity, source]", "api-team|SEV1|alertmanager"),
        ("[alertname, tier]", "APIHighErrorRate|frontend"),  # labels the rule sets count
    ],
)
def test_group_key_fields(tmp_path: Path, group_by: str | None, expected: str) -> None:
    group_line = f"group_by: {group_by}" if group_by else ""
    rs = ruleset(tmp_path, f"""
        rules:
          - name: api
            set:
              severity: SEV1
              team: api-team
              service: api
              labels: {{tier: frontend}}
              {group_line}
    """)
    labels = {"alertname": "APIHighErrorRate", "env": "prod"}
    assert rs.classify(make_alert(labels=labels)).group_key == expected


def test_classified_alert_is_a_valid_alert(tmp_path: Path) -> None:
    rs = load_rules(ROOT / "rules", CONFIG)
    got = rs.classify(make_alert(labels={"alertname": "APIHighErrorRate"}, value=0.3))
    assert Alert.model_validate(got.model_dump()) == got
    assert got.severity is Severity.SEV1 and got.receivers == ()  # from the (empty) policy


# --- files -------------------------------------------------------------------------------------


def test_files_load_in_name_order_without_test_files(tmp_path: Path) -> None:
    write_rules(tmp_path, {
        "20-b.yaml": "rules: [{name: b, set: {severity: SEV2}}]\n",
        "10-a.yaml": "rules: [{name: a, match: {labels: ['x=\"1\"']}, set: {severity: SEV1}}]\n",
        "10-a.test.yaml": "cases: []\n",
        "notes.txt": "not rules",
    })
    assert [p.name for p in rule_files(tmp_path)] == ["10-a.yaml", "20-b.yaml"]
    rs = load_rules(tmp_path, CONFIG)
    assert [r.name for r in rs.rules] == ["a", "b"]
    assert len(rs) == 2
    assert rs.classify(make_alert(labels={"alertname": "Z", "x": "1"})).rule == "a"


def test_shipped_rules_load_with_a_log_receiver() -> None:
    rs = load_rules(ROOT / "rules", CONFIG)
    assert check_rules(CONFIG, rs) == []
    assert len(rs) > 10


# --- load errors, by exact message -------------------------------------------------------------

R = "rules.yaml"
MATCHER_HINT = 'expected name="value", name!="value", name=~"regex" or name!~"regex"'

LOAD_ERRORS = [
    ("[1, 2]", "expected a mapping with a 'rules' list"),
    ("groups: []", "unknown top-level key 'groups' (expected 'rules')"),
    ("rules: {name: x}", "'rules' must be a list of rules"),
    ("rules: [just-a-string]", "rules[0]: expected a mapping"),
    ("rules: [{set: {severity: SEV1}}]", "rules[0]: missing 'name'"),
    ("rules: [{name: [a]}]", "rules[0]: name: expected a non-empty string"),
    ("rules: [{name: r, when: x}]",
     "rule 'r': unknown key 'when' (expected one of: name, description, match, value, set, "
     "continue)"),
    ("rules: [{name: r, description: [x]}]", "rule 'r': description: expected a string"),
    ("rules: [{name: r, match: [x]}]",
     "rule 'r': match: expected a mapping with 'source' and/or 'labels'"),
    ("rules: [{name: r, match: {label: x}}]",
     "rule 'r': match: unknown key 'label' (expected one of: source, labels)"),
    ("rules: [{name: r, match: {source: prometheus}}]",
     "rule 'r': match.source: unknown source 'prometheus' "
     "(expected one of: alertmanager, cloudwatch, generic)"),
    ("rules: [{name: r, match: {source: []}}]",
     "rule 'r': match.source: expected a source name or a list of source names"),
    ("rules: [{name: r, match: {labels: {env: prod}}}]",
     "rule 'r': match.labels: expected a list of matchers like 'alertname=\"X\"'"),
    ("rules: [{name: r, match: {labels: ['env==prod']}}]",
     f"rule 'r': match.labels[0]: invalid matcher 'env==prod': {MATCHER_HINT}"),
    ("rules: [{name: r, match: {labels: [3]}}]",
     f"rule 'r': match.labels[0]: invalid matcher 3: {MATCHER_HINT}"),
    ("rules: [{name: r, value: 5}]",
     "rule 'r': value: expected a mapping with op, threshold and unit"),
    ("rules: [{name: r, value: {op: '>', threshold: 1, unit: count, per: m}}]",
     "rule 'r': value: unknown key 'per' "
     "(expected one of: op, threshold, unit, observed_unit)"),
    ("rules: [{name: r, value: {op: '>', threshold: 1, unit: count, observed_unit: ratio}}]",
     "rule 'r': value.observed_unit: only for unit ratio or percent, not count"),
    ("rules: [{name: r, value: {op: '>', threshold: 1, unit: percent, observed_unit: auto}}]",
     "rule 'r': value.observed_unit: 'auto' is not one of ratio, percent, ratio_or_percent"),
    ("rules: [{name: r, value: {threshold: 1, unit: count}}]",
     "rule 'r': value.op: missing (one of >, >=, <, <=)"),
    ("rules: [{name: r, value: {op: '=>', threshold: 1, unit: count}}]",
     "rule 'r': value.op: '=>' is not one of >, >=, <, <="),
    ("rules: [{name: r, value: {op: '>', threshold: 1}}]",
     "rule 'r': value.unit: missing (one of ratio, percent, seconds, count)"),
    ("rules: [{name: r, value: {op: '>', threshold: 1, unit: percentage}}]",
     "rule 'r': value.unit: 'percentage' is not one of ratio, percent, seconds, count"),
    ("rules: [{name: r, value: {op: '>', unit: count}}]", "rule 'r': value.threshold: missing"),
    ("rules: [{name: r, value: {op: '>', threshold: high, unit: count}}]",
     "rule 'r': value.threshold: 'high' is not a number"),
    ("rules: [{name: r, value: {op: '>', threshold: true, unit: count}}]",
     "rule 'r': value.threshold: True is not a number"),
    ("rules: [{name: r, value: {op: '>', threshold: [1], unit: count}}]",
     "rule 'r': value.threshold: [1] is not a number"),
    ("rules: [{name: r, value: {op: '>', threshold: .nan, unit: count}}]",
     "rule 'r': value.threshold: nan is not a finite number"),
    ("rules: [{name: r, value: {op: '>', threshold: 5%, unit: count}}]",
     "rule 'r': value.threshold: '5%': a percentage needs unit ratio or percent"),
    ("rules: [{name: r, value: {op: '>', threshold: x%, unit: ratio}}]",
     "rule 'r': value.threshold: 'x%' is not a number"),
    ("rules: [{name: r, value: {op: '>', threshold: soon, unit: seconds}}]",
     "rule 'r': value.threshold: 'soon' is neither a number nor a duration like 15m"),
    ("rules: [{name: r, value: {op: '>', threshold: 20, unit: ratio}}]",
     "rule 'r': value.threshold: 20 is outside 0..1 for unit ratio "
     "(write it as a ratio, as \"20%\", or use unit percent)"),
    ("rules: [{name: r, set: [severity]}]", "rule 'r': set: expected a mapping of fields to set"),
    ("rules: [{name: r, set: {owner: me}}]",
     "rule 'r': set: unknown key 'owner' (expected one of: severity, team, service, "
     "runbook_url, dashboard_url, receivers, group_by, labels, group_wait, group_interval, "
     "repeat_interval)"),
    ("rules: [{name: r, set: {severity: P1}}]",
     "rule 'r': set.severity: 'P1' is not one of SEV1, SEV2, SEV3, SEV4"),
    ("rules: [{name: r, set: {severity: sev1}}]",
     "rule 'r': set.severity: 'sev1' is not one of SEV1, SEV2, SEV3, SEV4"),
    ("rules: [{name: r, set: {team: ''}}]", "rule 'r': set.team: expected a non-empty string"),
    ("rules: [{name: r, set: {runbook_url: 3}}]",
     "rule 'r': set.runbook_url: expected a non-empty string"),
    ("rules: [{name: r, set: {receivers: log}}]",
     "rule 'r': set.receivers: expected a list of receiver names"),
    ("rules: [{name: r, set: {group_by: []}}]",
     "rule 'r': set.group_by: expected a non-empty list of label or field names"),
    ("rules: [{name: r, set: {labels: {tier: [a]}}}]",
     "rule 'r': set.labels: expected a mapping of label names to string values"),
    ("rules: [{name: r, continue: yes please}]", "rule 'r': continue: expected true or false"),
]


@pytest.mark.parametrize(("text", "message"), LOAD_ERRORS)
def test_load_error_messages(tmp_path: Path, text: str, message: str) -> None:
    assert load_problems(tmp_path, text) == [f"{tmp_path / R}: {message}"]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    problems = load_problems(tmp_path, "rules:\n  - name: [unclosed\n")
    assert problems == [
        f"{tmp_path / R}: invalid YAML at line 3, column 1: expected ',' or ']', but got "
        "'<stream end>'"
    ]


def test_missing_rules_dir(tmp_path: Path) -> None:
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path / "nope", CONFIG)
    assert str(info.value) == f"{tmp_path / 'nope'}: rules directory does not exist"


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path, CONFIG)
    assert info.value.problems == [f"{tmp_path / 'dir.yaml'}: cannot read: Is a directory"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    write_rules(tmp_path, {
        "a.yaml": """
            rules:
              - name: one
                set: {severity: P1, receivers: [pager]}
              - name: two
                match: {labels: ['env=~"(prod"']}
        """,
        "b.yaml": "rules: [{name: two}, {name: three, continue: 1}]\n",
    })
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path, CONFIG)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert info.value.problems == [
        f"{a}: rule 'one': set.severity: 'P1' is not one of SEV1, SEV2, SEV3, SEV4",
        f"{b}: rule 'three': continue: expected true or false",
        f"{a}: rule 'two': match.labels[0]: invalid regex in env=~\"(prod\": "
        "missing ), unterminated subpattern at position 0",
        f"{b}: rule 'two': duplicate name (first defined in {a})",
    ]


# --- cross-checks, by exact message ------------------------------------------------------------

CHECK_ERRORS = [
    (
        "rules: [{name: r, set: {receivers: [log, pager]}}]",
        ["rule 'r': set.receivers: unknown receiver 'pager' (known: log)"],
    ),
    (
        "rules: [{name: r, match: {labels: ['env!~\"[a-\"']}}]",
        ["rule 'r': match.labels[0]: invalid regex in env!~\"[a-\": "
         "unterminated character set at position 0"],
    ),
    (
        "rules: [{name: r, match: {labels: [x=a]}}, {name: r, match: {labels: [x=b]}}]",
        ["rule 'r': duplicate name (first defined in {f})"],
    ),
    (
        """rules:
             - {name: everything, set: {severity: SEV3}}
             - {name: after, match: {labels: ['env="prod"']}, set: {severity: SEV1}}
             - {name: after-cw, match: {source: cloudwatch}}
        """,
        [
            "rule 'after': unreachable: rule 'everything' ({f}) matches every alert and does "
            "not continue",
            "rule 'after-cw': unreachable: rule 'everything' ({f}) matches every alert and does "
            "not continue",
        ],
    ),
    (
        """rules:
             - {name: all-cw, match: {source: cloudwatch}, set: {severity: SEV4}}
             - {name: cw-rds, match: {source: cloudwatch, labels: ['namespace="AWS/RDS"']}}
             - {name: any-source, match: {labels: ['namespace="AWS/RDS"']}}
        """,
        [
            "rule 'cw-rds': unreachable: rule 'all-cw' ({f}) matches every alert from source "
            "cloudwatch and does not continue",
        ],
    ),
]


@pytest.mark.parametrize(("text", "messages"), CHECK_ERRORS)
def test_check_error_messages(tmp_path: Path, text: str, messages: list[str]) -> None:
    f = tmp_path / R
    assert load_problems(tmp_path, text) == [f"{f}: " + m.format(f=f) for m in messages]


def test_catch_all_that_continues_hides_nothing(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
        rules:
          - {name: tag-all, set: {team: core}, continue: true}
          - {name: after, match: {labels: ['env="prod"']}, set: {severity: SEV1}}
    """)
    assert check_rules(CONFIG, rs) == []


def test_check_rules_reports_a_bad_severity_label_map(tmp_path: Path) -> None:
    config = make_config(severity_label_map={"crit": "P1", "warning": "SEV3"})
    problems = load_problems(tmp_path, "rules: []", config)
    assert problems == [
        "severity_label_map: 'crit' maps to 'P1', which is not one of SEV1, SEV2, SEV3, SEV4"
    ]


def test_unknown_receivers_can_be_left_unchecked(tmp_path: Path) -> None:
    write_rules(tmp_path, {"r.yaml": "rules: [{name: r, set: {receivers: [pager]}}]\n"})
    rs = load_rules(tmp_path, Config(), check_receivers=False)
    assert rs.classify(make_alert()).receivers == ("pager",)
    assert check_rules(Config(), rs) == [
        f"{tmp_path / 'r.yaml'}: rule 'r': set.receivers: unknown receiver 'pager' "
        "(known: none)"
    ]


def test_rule_sets_grouping_timers(tmp_path: Path) -> None:
    write_rules(tmp_path, {"10-a.yaml": (
        "rules:\n  - name: fast\n    match: {labels: ['alertname=\"Fast\"']}\n"
        "    set: {severity: SEV2, group_wait: 0s, group_interval: 30s, repeat_interval: 2h}\n")})
    rs = load_rules(tmp_path, CONFIG)
    got = rs.classify(make_alert(labels={"alertname": "Fast"}))
    assert (got.group_wait, got.group_interval, got.repeat_interval) == (
        timedelta(0), timedelta(seconds=30), timedelta(hours=2))
    other = rs.classify(make_alert(labels={"alertname": "Other"}))
    assert other.group_wait is None


def test_bad_timer_is_reported(tmp_path: Path) -> None:
    write_rules(tmp_path, {"10-a.yaml": (
        "rules:\n  - name: slow\n    set: {group_wait: soon}\n")})
    with pytest.raises(RuleError) as err:
        load_rules(tmp_path, CONFIG)
    assert "rule 'slow': set.group_wait: invalid duration 'soon'" in str(err.value)
