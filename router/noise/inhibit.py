"""Inhibition rules with Alertmanager's semantics (`inhibit/inhibit.go`), as a pure function.

A rule mutes a *target* alert (one its `target_matchers` match) while some *source* alert (one
its `source_matchers` match) is firing and has the same values for every label in `equal`
(a label missing on both sides counts as equal: both are the empty string). An alert never
inhibits itself: when the target also matches the source side, sources that also match the
target side are disregarded, so two `severity="critical"` alerts of one cluster under a rule
`critical inhibits critical` do not mute each other.

The config form is Alertmanager's: `source_matchers`/`target_matchers` as lists of matcher
strings (each line may hold several, `{a="b", c=~"d"}`), `equal` as label names, an optional
`name`; the deprecated `source_match`/`source_match_re` (and `target_*`) maps are read too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field, model_validator

from router.model import Frozen
from router.noise.matchers import Matcher, Matchers, MatchType, parse_matchers


class InhibitRule(Frozen):
    """One `inhibit_rules` entry of the config."""

    name: str = ""
    source_matchers: Matchers = Field(default_factory=Matchers.of)
    target_matchers: Matchers = Field(default_factory=Matchers.of)
    equal: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _config_form(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for side in ("source", "target"):
            matchers = [*_matchers(data.pop(f"{side}_matchers", ()), f"{side}_matchers")]
            for kind, key in ((MatchType.EQUAL, "match"), (MatchType.REGEX, "match_re")):
                legacy = data.pop(f"{side}_{key}", None) or {}
                if not isinstance(legacy, Mapping):
                    raise ValueError(f"{side}_{key} must be a map of label names to values")
                matchers += [Matcher.of(n, v, kind) for n, v in legacy.items()]
            data[f"{side}_matchers"] = Matchers(tuple(matchers))
        return data

    @model_validator(mode="after")
    def _equal_names(self) -> InhibitRule:
        for label in self.equal:
            if not label:
                raise ValueError('invalid label name "" in equal list')
        return self


def _matchers(lines: Any, field: str) -> Iterable[Matcher]:
    if isinstance(lines, Matchers):
        return lines
    if isinstance(lines, str) or not isinstance(lines, Iterable):
        raise ValueError(f"{field} must be a list of matchers, e.g. ['alertname=\"Foo\"']")
    out: list[Matcher] = []
    for line in lines:
        out += parse_matchers(line) if isinstance(line, str) else [Matcher.model_validate(line)]
    return out


class Inhibition(Frozen):
    """Why an alert is inhibited: the rule, and the labels of the firing source alert."""

    rule: InhibitRule
    source: dict[str, str]


def inhibited_by(
    target: Mapping[str, str],
    firing: Iterable[Mapping[str, str]],
    rules: Iterable[InhibitRule],
) -> Inhibition | None:
    """The first rule (in order) and source alert that inhibit `target`, or None.

    `firing` holds the labels of the alerts firing now (resolved ones must not be passed; the
    target itself may be among them). Sources are tried in the order given.
    """
    sources = firing if isinstance(firing, list | tuple) else list(firing)
    for rule in rules:
        if not rule.target_matchers.matches(target):
            continue
        # The target matches both sides: an alert matching both cannot inhibit it (or itself).
        two_sided = rule.source_matchers.matches(target)
        for source in sources:
            if not rule.source_matchers.matches(source):
                continue
            if any(source.get(n, "") != target.get(n, "") for n in rule.equal):
                continue
            if two_sided and rule.target_matchers.matches(source):
                continue
            return Inhibition(rule=rule, source=dict(source))
    return None


def inhibited(
    target: Mapping[str, str],
    firing: Iterable[Mapping[str, str]],
    rules: Iterable[InhibitRule],
) -> bool:
    """Whether some rule inhibits `target` given the alerts firing now (see `inhibited_by`)."""
    return inhibited_by(target, firing, rules) is not None
