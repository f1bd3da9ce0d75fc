"""Classification rules: `rules/*.yaml` -> severity, owner, runbook, receivers, group key.

A rule file holds a `rules:` list. Each rule matches on the source, Alertmanager-style label
matchers (`=`, `!=`, `=~`, `!~`, regexes fully anchored) and optionally a threshold on the
alert's observed value, then sets classification fields. Rules are tried in file-name order,
then in file order; the first match wins unless it says `continue: true`, in which case later
matching rules add to and override what it set. The format is documented in docs/rules.md.

Loading is strict and reports every problem at once (file, rule, what is wrong), the way
`promtool check rules` does. Classification is on the hot path of intake: matchers are compiled
once, rules are indexed by one exact-value matcher each (alertname first) and the candidate
list is cached per source and indexed label values, and the result is built with `Alert.replace`
(no re-validation).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from router.config import Config, unknown_receiver_note
from router.durations import parse_duration
from router.model import Alert, Severity, group_key_for

SOURCES = ("alertmanager", "cloudwatch", "generic")
UNITS = ("ratio", "percent", "seconds", "count")
# How a ratio/percent rule reads an alert's value when the alert does not state its unit:
# ratio_or_percent takes 0..1 as a ratio and anything above 1 as a percentage.
OBSERVED_UNITS = ("ratio", "percent", "ratio_or_percent")
# What an alert's `unit` annotation (or label) may say, and the unit it means.
DECLARED_UNITS = {"ratio": "ratio", "percent": "percent", "percentage": "percent",
                  "%": "percent"}
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
# Fields that `group_by` reads from the classified alert rather than from its labels.
GROUP_FIELDS = ("alertname", "service", "team", "severity", "source")

_RULE_KEYS = ("name", "description", "match", "value", "set", "continue")
_MATCH_KEYS = ("source", "labels")
_VALUE_KEYS = ("op", "threshold", "unit", "observed_unit")
_TIMER_KEYS = ("group_wait", "group_interval", "repeat_interval")
_SET_KEYS = (
    "severity", "team", "service", "runbook_url", "dashboard_url", "receivers", "group_by",
    "labels", *_TIMER_KEYS,
)
_SEVERITIES = ", ".join(s.value for s in Severity)
# Cap on the candidate cache (keyed by indexed label values), so hostile labels cannot grow it.
_CACHE_MAX = 10_000


class RuleError(Exception):
    """Rules that cannot be used. The message lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- compiled rules --------------------------------------------------------------------------

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
_LITERAL_ALTERNATION = re.compile(r"[A-Za-z0-9_:\-]+(?:\|[A-Za-z0-9_:\-]+)*")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One Alertmanager matcher. A missing label matches as the empty string, like AM."""

    label: str
    op: str
    value: str
    # Compiled, fully anchored pattern for =~ and !~; None for = and != and for bad regexes.
    regex: re.Pattern[str] | None = None
    regex_error: str | None = None
    # Label value -> whether the regex matches it: label values repeat (alert names), and a
    # dict lookup costs a fraction of a fullmatch. Bounded like the candidate cache.
    memo: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.label, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        found = self.memo.get(v)
        if found is None:
            if self.regex is None:  # a bad regex never matches; check_rules reports it
                return False
            found = self.regex.fullmatch(v) is not None
            if len(self.memo) >= _CACHE_MAX:
                self.memo.clear()
            self.memo[v] = found
        return found if self.op == "=~" else not found

    def literals(self) -> frozenset[str] | None:
        """The exact values this matcher accepts, when it is `=` or `=~"A|B"` of literals."""
        if self.op == "=":
            return frozenset((self.value,))
        if self.op == "=~" and _LITERAL_ALTERNATION.fullmatch(self.value):
            return frozenset(self.value.split("|"))
        return None

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.label}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """Parse `name="value"` (also `!=`, `=~`, `!~`; value quoted or bare); ValueError if not."""
    m = _MATCHER.match(text)
    if m is None:
        raise ValueError(text)
    label, op, raw = m.groups()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        value = _unquote(raw[1:-1], text)
    elif '"' in raw or raw[:1] in ("=", "~"):  # `env==prod`, `env=~~x`: surely a typo
        raise ValueError(text)
    else:
        value = raw
    if op in ("=", "!="):
        return Matcher(label, op, value)
    try:
        re.compile(value)  # errors point into the pattern as written, not the wrapped one
        return Matcher(label, op, value, regex=re.compile(f"(?:{value})"))
    except re.error as exc:
        return Matcher(label, op, value, regex_error=str(exc))


def _unquote(body: str, text: str) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        if c == '"':
            raise ValueError(text)
        out.append(c)
        i += 1
    return "".join(out)


def declared_unit(alert: Alert) -> str | None:
    """The unit the alert states for its value (ratio or percent), or None.

    A `unit` annotation or label (`ratio`, `percent`, `%`; the CloudWatch source sets it from
    the alarm), else: an Alertmanager value written as "7%" was read as the ratio 0.07 by the
    source (router.sources.alertmanager.observed_value).
    """
    for where in (alert.annotations, alert.labels):
        stated = where.get("unit")
        if stated is not None:
            return DECLARED_UNITS.get(stated.strip().lower())
    if alert.source == "alertmanager":
        raw = alert.annotations.get("value") or alert.labels.get("value") or ""
        if raw.strip().endswith("%"):
            return "ratio"
    return None


def _rescale(value: float, to: str) -> float:
    """A ratio as a percentage or back; Decimal so 0.07 is 7 exactly, not 7.000000000000001."""
    exact = Decimal(repr(value))
    return float(exact * 100 if to == "percent" else exact / 100)


@dataclass(frozen=True, slots=True)
class ValueCondition:
    """`value <op> threshold`, the threshold in `unit`. For ratio/percent rules the alert's
    value is first read in its own unit (declared by the alert, else `observed`) and converted
    to `unit`; seconds and count compare as given."""

    op: str
    threshold: float
    unit: str
    observed: str | None = None  # None: the alert's value is in `unit`

    @property
    def scaled(self) -> bool:
        """Whether the alert's value may need converting (ratio and percent rules)."""
        return self.unit in ("ratio", "percent")

    def holds(self, value: float | None, declared: str | None = None) -> bool:
        if value is None:
            return False
        unit = declared or self.observed
        if unit is not None and self.scaled:
            if unit == "ratio_or_percent":
                unit = "percent" if value > 1 else "ratio"
            if unit != self.unit:
                value = _rescale(value, self.unit)
        return OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        seen = f", values read as {self.observed}" if self.observed else ""
        return f"value {self.op} {self.threshold:g} ({self.unit}{seen})"


@dataclass(frozen=True, slots=True, eq=False)  # identity: rules are hashed into candidate sets
class Rule:
    name: str
    file: str
    position: int  # global order: file-name order, then order within the file
    sources: frozenset[str] | None = None  # None: every source
    matchers: tuple[Matcher, ...] = ()
    condition: ValueCondition | None = None
    severity: Severity | None = None
    team: str | None = None
    service: str | None = None
    runbook_url: str | None = None
    dashboard_url: str | None = None
    receivers: tuple[str, ...] | None = None
    group_by: tuple[str, ...] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # group_wait / group_interval / repeat_interval overrides for the engine.
    timers: Mapping[str, timedelta] = field(default_factory=dict)
    continue_: bool = False
    description: str = ""
    # Filled in by __post_init__: the label and exact values the rule set indexes this rule
    # under (an `alertname` matcher if there is one, else the first `=` or `=~"A|B"`), and the
    # matchers left to evaluate once the index found the rule.
    index_label: str | None = field(default=None, init=False)
    index_values: frozenset[str] = field(default=frozenset(), init=False)
    residual: tuple[Matcher, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        ordered = sorted(self.matchers, key=lambda m: m.label != "alertname")
        chosen = next((m for m in ordered if m.literals() is not None), None)
        if chosen is not None:
            object.__setattr__(self, "index_label", chosen.label)
            object.__setattr__(self, "index_values", chosen.literals())
        object.__setattr__(self, "residual", tuple(m for m in self.matchers if m is not chosen))

    @property
    def where(self) -> str:
        return f"{self.file}: rule {self.name!r}"

    def matches(self, alert: Alert, labels: Mapping[str, str]) -> bool:
        """Full check (for callers outside the indexed path, e.g. tools and tests)."""
        if self.sources is not None and alert.source not in self.sources:
            return False
        if self.condition is not None and not self.condition.holds(alert.value,
                                                                    declared_unit(alert)):
            return False
        return all(m.matches(labels) for m in self.matchers)

    def is_catch_all(self) -> bool:
        """Matches every alert of its sources and stops there: later rules cannot be reached."""
        return not self.matchers and self.condition is None and not self.continue_


# --- classification --------------------------------------------------------------------------


class RuleSet:
    """The loaded rules plus the config defaults they fall back to; `classify` is pure."""

    def __init__(self, rules: Iterable[Rule], config: Config) -> None:
        self.rules: tuple[Rule, ...] = tuple(sorted(rules, key=lambda r: r.position))
        self.config = config
        self._label_map: dict[str, Severity] = {}
        for k, v in config.severity_label_map.items():
            if v in Severity.__members__:
                self._label_map[k.lower()] = Severity(v)
        self._policy_receivers = {
            s: tuple(config.severities.for_severity(s).receivers) for s in Severity
        }
        # label -> value -> rules indexed under it; rules without an exact matcher are checked
        # for every alert of their sources.
        index: dict[str, dict[str, list[Rule]]] = {}
        self._unindexed: tuple[Rule, ...] = tuple(r for r in self.rules if r.index_label is None)
        for r in self.rules:
            if r.index_label is not None:
                for v in r.index_values:
                    index.setdefault(r.index_label, {}).setdefault(v, []).append(r)
        self._index_labels: tuple[str, ...] = tuple(sorted(index))
        self._index_set = frozenset(self._index_labels)
        self._index = [index[label] for label in self._index_labels]
        self._cache: dict[tuple[str, ...], tuple[Rule, ...]] = {}

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.file for r in self.rules))

    def candidates(self, source: str, labels: Mapping[str, str]) -> tuple[Rule, ...]:
        """Rules that may match an alert of this source and labels, in evaluation order.

        Cached by the values of the indexed labels: alerts of one kind share one list. A rule's
        matchers on those labels (e.g. `alertname=~".*HighErrorRate"`) give the same answer for
        every alert under the key, so a rule they reject is left out of the list here, once.
        """
        key = (source, *[labels.get(label, "") for label in self._index_labels])
        found = self._cache.get(key)
        if found is None:
            merged = sorted(
                {
                    *self._unindexed,
                    *(r for by_value, v in zip(self._index, key[1:], strict=True)
                      for r in by_value.get(v, ())),
                },
                key=lambda r: r.position,
            )
            keyed = self._index_set
            found = tuple(
                r for r in merged
                if (r.sources is None or source in r.sources)
                and all(m.matches(labels) for m in r.residual if m.label in keyed)
            )
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = found
        return found

    def classify(self, alert: Alert) -> Alert:
        """A copy of `alert` with the classification fields filled in (see docs/rules.md)."""
        labels = alert.labels
        if "alertname" not in labels:
            # Matchers on `alertname` see the alert's name when the source has no such label.
            labels = {**labels, "alertname": alert.name}
        value = alert.value
        declared: str | None = None
        declared_known = False  # read once, and only when a value rule is tried
        severity: Severity | None = None
        team = service = runbook_url = dashboard_url = None
        receivers: tuple[str, ...] | None = None
        group_by: tuple[str, ...] | None = None
        extra: dict[str, str] = {}
        timers: dict[str, timedelta] = {}
        matched: list[str] = []
        for r in self.candidates(alert.source, labels):
            if r.condition is not None:
                if not declared_known and value is not None and r.condition.scaled:
                    declared, declared_known = declared_unit(alert), True
                if not r.condition.holds(value, declared):
                    continue
            for m in r.residual:
                if not m.matches(labels):
                    break
            else:
                matched.append(r.name)
                # Later matches override: each field keeps the last value a matching rule set.
                if r.severity is not None:
                    severity = r.severity
                if r.team is not None:
                    team = r.team
                if r.service is not None:
                    service = r.service
                if r.runbook_url is not None:
                    runbook_url = r.runbook_url
                if r.dashboard_url is not None:
                    dashboard_url = r.dashboard_url
                if r.receivers is not None:
                    receivers = r.receivers
                if r.group_by is not None:
                    group_by = r.group_by
                if r.labels:
                    extra.update(r.labels)
                if r.timers:
                    timers.update(r.timers)
                if not r.continue_:
                    break

        src = alert.labels
        if severity is None:
            severity = alert.severity or self._label_map.get(
                src.get("severity", "").lower(), Severity.SEV3
            )
        team = team or alert.team or src.get("team")
        service = service or alert.service or src.get("service")
        runbook_url = runbook_url or alert.runbook_url or alert.annotations.get("runbook_url")
        dashboard_url = (
            dashboard_url or alert.dashboard_url or alert.annotations.get("dashboard_url")
        )
        if receivers is None:
            receivers = alert.receivers or self._policy_receivers[severity]
        out_labels = {**src, **extra} if extra else src
        if group_by is not None:
            group_key = "|".join(
                _group_field(f, alert, out_labels, severity, team, service) for f in group_by
            )
        else:
            group_key = alert.group_key or group_key_for(alert.name, service)
        return alert.replace(
            severity=severity,
            team=team,
            service=service,
            runbook_url=runbook_url,
            dashboard_url=dashboard_url,
            receivers=receivers,
            group_key=group_key,
            rule=", ".join(matched) if matched else None,
            labels=out_labels,
            **timers,
        )


def _group_field(
    name: str, alert: Alert, labels: Mapping[str, str], severity: Severity,
    team: str | None, service: str | None,
) -> str:
    if name == "alertname":
        return alert.name
    if name == "service":
        return service or ""
    if name == "team":
        return team or ""
    if name == "severity":
        return severity.value
    if name == "source":
        return alert.source
    return labels.get(name, "")


# --- loading -----------------------------------------------------------------------------------


def rule_files(rules_dir: Path) -> list[Path]:
    """`*.yaml` in file-name order, without the rule tests (`*.test.yaml`)."""
    return sorted(
        (p for p in rules_dir.glob("*.yaml") if not p.name.endswith(".test.yaml")),
        key=lambda p: p.name,
    )


def load_rules(rules_dir: Path, config: Config, *, check_receivers: bool = True) -> RuleSet:
    """Load and cross-check every rule file; raise RuleError listing every problem.

    `check_receivers=False` skips the unknown-receiver check (test-rules without a config).
    """
    problems: list[str] = []
    rules: list[Rule] = []
    if not rules_dir.is_dir():
        raise RuleError([f"{rules_dir}: rules directory does not exist"])
    for path in rule_files(rules_dir):
        rules.extend(parse_rule_file(path, len(rules), problems))
    ruleset = RuleSet(rules, config)
    problems.extend(check_rules(config, ruleset, check_receivers=check_receivers))
    if problems:
        raise RuleError(problems)
    return ruleset


def parse_rule_file(path: Path, first_position: int, problems: list[str]) -> list[Rule]:
    """Parse one file; structural problems are appended to `problems`, bad rules skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
        return []
    return parse_rules_text(text, str(path), first_position, problems)


def parse_rules_text(
    text: str, source: str, first_position: int, problems: list[str]
) -> list[Rule]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        problems.append(f"{source}: invalid YAML{where}: {problem}")
        return []
    if raw is None:
        return []
    if not isinstance(raw, dict):
        problems.append(f"{source}: expected a mapping with a 'rules' list")
        return []
    for key in raw:
        if key != "rules":
            problems.append(f"{source}: unknown top-level key {key!r} (expected 'rules')")
    items = raw.get("rules")
    if items is None:
        return []
    if not isinstance(items, list):
        problems.append(f"{source}: 'rules' must be a list of rules")
        return []
    out: list[Rule] = []
    for i, item in enumerate(items):
        rule = _parse_rule(item, source, i, first_position + len(out), problems)
        if rule is not None:
            out.append(rule)
    return out


def _parse_rule(
    item: Any, source: str, index: int, position: int, problems: list[str]
) -> Rule | None:
    if not isinstance(item, dict):
        problems.append(f"{source}: rules[{index}]: expected a mapping")
        return None
    name = item.get("name")
    if isinstance(name, str) and name.strip():
        where = f"{source}: rule {name!r}"
    else:
        where = f"{source}: rules[{index}]"
        problems.append(f"{where}: missing 'name'" if name is None or name == ""
                        else f"{where}: name: expected a non-empty string")
        name = None
    before = len(problems)

    def bad(msg: str) -> None:
        problems.append(f"{where}: {msg}")

    _unknown_keys(item, _RULE_KEYS, "", bad)
    description = item.get("description", "")
    if not isinstance(description, str):
        bad("description: expected a string")

    sources: frozenset[str] | None = None
    matchers: list[Matcher] = []
    match = item.get("match", {})
    if match is None:
        match = {}
    if not isinstance(match, dict):
        bad("match: expected a mapping with 'source' and/or 'labels'")
        match = {}
    _unknown_keys(match, _MATCH_KEYS, "match", bad)
    if "source" in match:
        sources = _parse_sources(match["source"], bad)
    labels_spec = match.get("labels", [])
    if isinstance(labels_spec, str):
        labels_spec = [labels_spec]
    if not isinstance(labels_spec, list):
        bad('match.labels: expected a list of matchers like \'alertname="X"\'')
        labels_spec = []
    for j, spec in enumerate(labels_spec):
        try:
            if not isinstance(spec, str):
                raise ValueError(repr(spec))
            matchers.append(parse_matcher(spec))
        except ValueError:
            bad(f"match.labels[{j}]: invalid matcher {spec!r}: expected name=\"value\", "
                f"name!=\"value\", name=~\"regex\" or name!~\"regex\"")

    condition = _parse_condition(item["value"], bad) if "value" in item else None
    fields = _parse_set(item.get("set", {}), bad)
    cont = item.get("continue", False)
    if not isinstance(cont, bool):
        bad("continue: expected true or false")
        cont = False

    if name is None or len(problems) != before:
        return None
    return Rule(
        name=name,
        file=source,
        position=position,
        sources=sources,
        matchers=tuple(matchers),
        condition=condition,
        continue_=cont,
        description=description if isinstance(description, str) else "",
        **fields,
    )


def _unknown_keys(
    data: dict[Any, Any], allowed: tuple[str, ...], prefix: str, bad: Callable[[str], None]
) -> None:
    for key in data:
        if key not in allowed:
            where = f"{prefix}: " if prefix else ""
            bad(f"{where}unknown key {key!r} (expected one of: {', '.join(allowed)})")


def _parse_sources(spec: Any, bad: Callable[[str], None]) -> frozenset[str] | None:
    names = [spec] if isinstance(spec, str) else spec
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        bad("match.source: expected a source name or a list of source names")
        return None
    for n in names:
        if n not in SOURCES:
            bad(f"match.source: unknown source {n!r} (expected one of: {', '.join(SOURCES)})")
    return frozenset(names)


def _parse_condition(spec: Any, bad: Callable[[str], None]) -> ValueCondition | None:
    if not isinstance(spec, dict):
        bad("value: expected a mapping with op, threshold and unit")
        return None
    ok = True
    _unknown_keys(spec, _VALUE_KEYS, "value", bad)
    op, unit, threshold = spec.get("op"), spec.get("unit"), spec.get("threshold")
    observed = spec.get("observed_unit")
    if op not in OPS:
        if op is None:
            bad(f"value.op: missing (one of {', '.join(OPS)})")
        else:
            bad(f"value.op: {op!r} is not one of {', '.join(OPS)}")
        ok = False
    if unit not in UNITS:
        if unit is None:
            bad(f"value.unit: missing (one of {', '.join(UNITS)})")
        else:
            bad(f"value.unit: {unit!r} is not one of {', '.join(UNITS)}")
        ok = False
    if observed is not None and unit in ("seconds", "count"):
        bad(f"value.observed_unit: only for unit ratio or percent, not {unit}")
        ok = False
    elif observed is not None and observed not in OBSERVED_UNITS:
        bad(f"value.observed_unit: {observed!r} is not one of {', '.join(OBSERVED_UNITS)}")
        ok = False
    if threshold is None:
        bad("value.threshold: missing")
        return None
    if not ok:
        return None
    number = _threshold(threshold, str(unit), bad)
    if number is None:
        return None
    return ValueCondition(op=str(op), threshold=number, unit=str(unit),
                          observed=None if observed is None else str(observed))


def _threshold(raw: Any, unit: str, bad: Callable[[str], None]) -> float | None:
    """The threshold in the rule's unit. Accepts numbers, "5%" (ratio/percent), "15m" (seconds)."""
    if isinstance(raw, bool):
        bad(f"value.threshold: {raw!r} is not a number")
        return None
    if isinstance(raw, int | float):
        number = Decimal(str(raw))
    elif isinstance(raw, str) and raw.strip().endswith("%"):
        if unit not in ("ratio", "percent"):
            bad(f"value.threshold: {raw!r}: a percentage needs unit ratio or percent")
            return None
        try:
            number = Decimal(raw.strip()[:-1].strip())
        except InvalidOperation:
            bad(f"value.threshold: {raw!r} is not a number")
            return None
        # Decimal keeps "5%" exactly 0.05, so the boundary compares like the written number.
        if unit == "ratio":
            number = number / 100
    elif isinstance(raw, str):
        try:
            number = Decimal(raw.strip())
        except InvalidOperation:
            if unit != "seconds":
                bad(f"value.threshold: {raw!r} is not a number")
                return None
            try:
                number = Decimal(str(parse_duration(raw).total_seconds()))
            except ValueError:
                bad(f"value.threshold: {raw!r} is neither a number nor a duration like 15m")
                return None
    else:
        bad(f"value.threshold: {raw!r} is not a number")
        return None
    if not number.is_finite():
        bad(f"value.threshold: {raw!r} is not a finite number")
        return None
    if unit == "ratio" and not 0 <= number <= 1:
        bad(f"value.threshold: {raw!r} is outside 0..1 for unit ratio "
            f"(write it as a ratio, as \"{raw}%\", or use unit percent)")
        return None
    return float(number)


def _parse_set(spec: Any, bad: Callable[[str], None]) -> dict[str, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        bad("set: expected a mapping of fields to set")
        return {}
    _unknown_keys(spec, _SET_KEYS, "set", bad)
    out: dict[str, Any] = {}
    if "severity" in spec:
        sev = spec["severity"]
        if isinstance(sev, str) and sev in Severity.__members__:
            out["severity"] = Severity(sev)
        else:
            bad(f"set.severity: {sev!r} is not one of {_SEVERITIES}")
    for key in ("team", "service", "runbook_url", "dashboard_url"):
        if key in spec:
            v = spec[key]
            if isinstance(v, str) and v:
                out[key] = v
            else:
                bad(f"set.{key}: expected a non-empty string")
    if "receivers" in spec:
        v = spec["receivers"]
        if isinstance(v, list) and all(isinstance(x, str) and x for x in v):
            out["receivers"] = tuple(v)
        else:
            bad("set.receivers: expected a list of receiver names")
    if "group_by" in spec:
        v = spec["group_by"]
        if isinstance(v, list) and v and all(isinstance(x, str) and x for x in v):
            out["group_by"] = tuple(v)
        else:
            bad("set.group_by: expected a non-empty list of label or field names")
    if "labels" in spec:
        v = spec["labels"]
        if isinstance(v, dict) and all(
            isinstance(k, str) and isinstance(x, str) for k, x in v.items()
        ):
            out["labels"] = dict(v)
        else:
            bad("set.labels: expected a mapping of label names to string values")
    timers: dict[str, timedelta] = {}
    for key in _TIMER_KEYS:
        if key in spec:
            try:
                timers[key] = parse_duration(str(spec[key]))
            except ValueError as exc:
                bad(f"set.{key}: {exc}")
    if timers:
        out["timers"] = timers
    return out


# --- cross-checks ------------------------------------------------------------------------------


def check_rules(config: Config, ruleset: RuleSet, *, check_receivers: bool = True) -> list[str]:
    """Problems that need the whole rule set or the config; empty when all is well."""
    problems: list[str] = []
    known = config.receiver_names()
    note = unknown_receiver_note(known)
    seen: dict[str, Rule] = {}
    # Catch-all rules seen so far: (rule, the sources it covers or None for all).
    catch_alls: list[Rule] = []
    for r in ruleset.rules:
        if r.name in seen:
            problems.append(f"{r.where}: duplicate name (first defined in {seen[r.name].file})")
        else:
            seen[r.name] = r
        for j, m in enumerate(r.matchers):
            if m.regex_error is not None:
                problems.append(f"{r.where}: match.labels[{j}]: invalid regex in {m}: "
                                f"{m.regex_error}")
        if check_receivers:
            for name in r.receivers or ():
                if name not in known:
                    problems.append(f"{r.where}: set.receivers: unknown receiver {name!r} "
                                    f"{note}")
        for c in catch_alls:
            if c.sources is None or (r.sources is not None and r.sources <= c.sources):
                scope = "" if c.sources is None else (
                    " from source " + ", ".join(sorted(c.sources)))
                problems.append(f"{r.where}: unreachable: rule {c.name!r} ({c.file}) matches "
                                f"every alert{scope} and does not continue")
                break
        if r.is_catch_all():
            catch_alls.append(r)
    for k, v in config.severity_label_map.items():
        if v not in Severity.__members__:
            problems.append(f"severity_label_map: {k!r} maps to {v!r}, "
                            f"which is not one of {_SEVERITIES}")
    return problems
