"""Inhibition rules: Alertmanager's semantics as one pure function, its cases as tables.

Cases ported as data from prometheus/alertmanager (main, 2026) `inhibit/inhibit_test.go`:
TestInhibitRuleHasEqual -> HAS_EQUAL_CASES (AM keeps resolved sources in its cache and skips
them; here the caller passes only firing ones, so the table marks each source and the test
passes the firing ones), TestInhibitRuleMatches -> MATCH_CASES, TestInhibitRuleMatchers ->
MATCHERS_CASES, TestInhibit -> INHIBIT_CASES (the alerts' latest states).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from router.noise.inhibit import InhibitRule, inhibited, inhibited_by
from router.noise.matchers import Matcher, Matchers, MatchType, parse_matchers

Labels = dict[str, str]


def rule(source: str, target: str, equal: tuple[str, ...] = ()) -> InhibitRule:
    return InhibitRule(
        source_matchers=parse_matchers(source),
        target_matchers=parse_matchers(target),
        equal=equal,
    )


# (equal labels, sources as (labels, firing), target, inhibited): any source, any target.
HAS_EQUAL_CASES: list[tuple[str, tuple[str, ...], list[tuple[Labels, bool]], Labels, bool]] = [
    ("no source alerts", (), [], {"a": "b"}, False),
    ("no equal labels: any source alert will do", (), [({}, True)], {"a": "b"}, True),
    (
        "matching but already resolved",
        ("a", "b"),
        [({"a": "b", "b": "f"}, False), ({"a": "b", "b": "c"}, False)],
        {"a": "b", "b": "c"},
        False,
    ),
    (
        "matching and unresolved",
        ("a",),
        [({"a": "b", "c": "d"}, False), ({"a": "b", "c": "f"}, True)],
        {"a": "b"},
        True,
    ),
    (
        "equal label does not match",
        ("a",),
        [({"a": "c", "c": "d"}, False), ({"a": "c", "c": "f"}, False)],
        {"a": "b"},
        False,
    ),
    # Beyond AM's table: a label missing on both sides is equal; on one side it is not.
    ("equal label missing on both sides", ("cluster",), [({"x": "1"}, True)], {"y": "2"}, True),
    (
        "equal label missing on one side",
        ("cluster",),
        [({"cluster": "a"}, True)],
        {"y": "2"},
        False,
    ),
    (
        "equal label empty on one side, missing on the other",
        ("cluster",),
        [({"cluster": ""}, True)],
        {"y": "2"},
        True,
    ),
]


@pytest.mark.parametrize(
    ("equal", "sources", "target", "want"),
    [c[1:] for c in HAS_EQUAL_CASES],
    ids=[c[0] for c in HAS_EQUAL_CASES],
)
def test_has_equal(
    equal: tuple[str, ...], sources: list[tuple[Labels, bool]], target: Labels, want: bool
) -> None:
    # AM's hasEqual works on its cache of source alerts; here a marker label makes every
    # firing alert of the table a source, and the target only a target.
    firing = [{**labels, "src": "1"} for labels, is_firing in sources if is_firing]
    assert inhibited(target, firing, [rule('src="1"', 'src=""', equal)]) is want


# TestInhibitRuleMatches: rule1 s1=1 -> t1=1, rule2 s2=1 -> t2=1, both equal on `e`.
MATCH_RULES = [rule('s1="1"', 't1="1"', ("e",)), rule('s2="1"', 't2="1"', ("e",))]
# Firing: one that matches rule1's source side only, one that matches both sides of rule2.
MATCH_SOURCES: list[Labels] = [{"s1": "1", "t1": "2", "e": "1"}, {"s2": "1", "t2": "1", "e": "1"}]

# (target, inhibited, why)
MATCH_CASES: list[tuple[Labels, bool, str]] = [
    ({"t1": "1", "e": "1"}, True, "matches rule1's target"),
    ({"t2": "1", "e": "1"}, True, "matches rule2's target"),
    ({"t1": "1", "t3": "1", "e": "1"}, True, "rule1's target plus noise"),
    ({"t1": "1", "t2": "1", "e": "1"}, True, "both rules' targets"),
    ({"t1": "0", "e": "1"}, False, "no target side matches"),
    (
        {"s1": "1", "t1": "1", "e": "1"},
        True,
        "both sides of rule1, but the source matches only rule1's source side",
    ),
    (
        {"s2": "1", "t2": "1", "e": "1"},
        False,
        "both sides of rule2, and so does the only source: no self-inhibition",
    ),
    ({"t1": "1", "e": "0"}, False, "the equal label differs"),
]


@pytest.mark.parametrize(
    ("target", "want"), [c[:2] for c in MATCH_CASES], ids=[c[2] for c in MATCH_CASES]
)
def test_rule_matches(target: Labels, want: bool) -> None:
    assert inhibited(target, MATCH_SOURCES, MATCH_RULES) is want


# TestInhibitRuleMatchers: as above, but rule1's target is `t1!="1"`.
MATCHERS_RULES = [rule('s1="1"', 't1!="1"', ("e",)), rule('s2="1"', 't2="1"', ("e",))]

MATCHERS_CASES: list[tuple[Labels, bool]] = [
    ({"t1": "1", "e": "1"}, False),
    ({"t2": "1", "e": "1"}, True),
    ({"t1": "1", "t3": "1", "e": "1"}, False),
    ({"t1": "1", "t2": "1", "e": "1"}, True),
    ({"t1": "0", "e": "1"}, True),
    ({"s1": "1", "t1": "1", "e": "1"}, False),
    ({"s2": "1", "t2": "1", "e": "1"}, True),  # rule1: t1 is missing, so t1!="1" holds
    ({"t1": "1", "e": "0"}, False),
]


@pytest.mark.parametrize(("target", "want"), MATCHERS_CASES)
def test_rule_matchers(target: Labels, want: bool) -> None:
    assert inhibited(target, MATCH_SOURCES, MATCHERS_RULES) is want


# TestInhibit: s=1 inhibits t=1 with equal `e`; alertOne {t=1,e=f}, alertTwo {s=1,e=f}.
ONE: Labels = {"t": "1", "e": "f"}
TWO: Labels = {"s": "1", "e": "f"}

# (firing alerts, [(labels, muted)])
INHIBIT_CASES: list[tuple[list[Labels], list[tuple[Labels, bool]]]] = [
    ([ONE], [(ONE, False)]),  # alertTwo has not fired
    ([ONE, TWO], [(ONE, True), (TWO, False)]),
    ([ONE], [(ONE, False), (TWO, False)]),  # alertTwo fired, then resolved
]


@pytest.mark.parametrize(("firing", "expected"), INHIBIT_CASES)
def test_inhibit(firing: list[Labels], expected: list[tuple[Labels, bool]]) -> None:
    rules = [rule('s="1"', 't="1"', ("e",))]
    for labels, muted in expected:
        assert inhibited(labels, firing, rules) is muted


def test_inhibited_by_names_the_rule_and_the_source() -> None:
    cluster_down = rule('alertname="ClusterDown"', 'alertname="HighErrorRate"', ("cluster",))
    other = rule('alertname="Nope"', 'alertname="HighErrorRate"')
    source = {"alertname": "ClusterDown", "cluster": "eu-1"}
    target = {"alertname": "HighErrorRate", "cluster": "eu-1", "service": "api"}
    firing = [{"alertname": "ClusterDown", "cluster": "us-1"}, source, target]
    found = inhibited_by(target, iter(firing), [other, cluster_down])
    assert found is not None
    assert (found.rule, found.source) == (cluster_down, source)
    assert inhibited_by({**target, "cluster": "ap-1"}, firing, [other, cluster_down]) is None


def test_same_rule_on_both_sides_does_not_mute_its_peers() -> None:
    # critical inhibits critical of the same cluster: two criticals do not mute each other.
    crit = rule('severity="critical"', 'severity="critical"', ("cluster",))
    a = {"alertname": "A", "severity": "critical", "cluster": "x"}
    b = {"alertname": "B", "severity": "critical", "cluster": "x"}
    assert not inhibited(a, [a, b], [crit])
    assert not inhibited(b, [a, b], [crit])


def test_config_form_as_alertmanager_reads_it() -> None:
    got = InhibitRule.model_validate(
        {
            "name": "cluster-down",
            "source_matchers": ['alertname="ClusterDown"'],
            "target_matchers": ['{alertname="HighErrorRate", severity=~"warning|info"}'],
            "equal": ["cluster"],
        }
    )
    assert got.name == "cluster-down"
    assert got.source_matchers == parse_matchers('alertname="ClusterDown"')
    assert got.target_matchers == parse_matchers(
        'alertname="HighErrorRate",severity=~"warning|info"'
    )
    assert got.equal == ("cluster",)


def test_deprecated_match_maps_are_read() -> None:
    got = InhibitRule.model_validate(
        {"source_match": {"severity": "critical"}, "target_match_re": {"severity": "warn.*"}}
    )
    assert got.source_matchers == Matchers.of(Matcher(name="severity", value="critical"))
    assert got.target_matchers == Matchers.of(
        Matcher(name="severity", value="warn.*", type=MatchType.REGEX)
    )


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ({"source_matchers": 'alertname="X"'}, "source_matchers must be a list of matchers"),
        ({"target_matchers": ["alertname"]}, "bad matcher format: alertname"),
        ({"source_match_re": {"a": "("}}, "invalid regular expression '\\('"),
        ({"equal": [""]}, 'invalid label name "" in equal list'),
        ({"source_matcher": ['a="b"']}, "source_matcher"),  # a typo is not ignored
    ],
)
def test_config_errors_say_what_is_wrong(config: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        InhibitRule.model_validate(config)


def test_stored_form_round_trips() -> None:
    got = InhibitRule.model_validate(
        {"source_matchers": ['a="b"'], "target_matchers": ['c=~"d|e"'], "equal": ["x"]}
    )
    assert InhibitRule.model_validate_json(got.model_dump_json()) == got
    assert InhibitRule.model_validate(got.model_dump()) == got
