"""What the pages show, computed from the read views: pure functions of their inputs and `now`
(table-tested in tests/ui/test_views.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import yaml

from router.backends.filters import AlertQuery
from router.incidents import Incident, IncidentStatus
from router.model import Alert, Severity
from router.noise.matchers import MatchType
from router.noise.muters import labels_of
from router.noise.silences import Silence
from router.policy import SeverityPolicies
from router.postmortem import format_span

# --- alerts --------------------------------------------------------------------------------

FILTERS = ("severity", "status", "service", "team", "source")
# Alerts one page of the list renders (newest first); older ones are a "next page" away.
PAGE_ROWS = 100


@dataclass(frozen=True)
class AlertFilter:
    severity: str = ""
    status: str = ""
    service: str = ""
    team: str = ""
    source: str = ""

    @classmethod
    def of(cls, query: Mapping[str, str]) -> AlertFilter:
        return cls(**{k: query.get(k, "").strip()[:200] for k in FILTERS})

    def to_query(self) -> AlertQuery:
        """What the backend is asked for (it filters and counts; nothing is scanned here)."""
        return AlertQuery(**{k: v or None for k, v in vars(self).items()})

    def keeps(self, a: Alert) -> bool:
        return self.to_query().keeps(a)

    def query(self) -> str:
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in vars(self).items() if v})


def severity_counts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Counts by severity, worst first, the unclassified ("none") last; zeros left out."""
    order = [s.value for s in Severity]
    known = [(s, counts[s]) for s in order if counts.get(s)]
    other = sum(n for s, n in counts.items() if s not in order)
    return known + ([("none", other)] if other else [])


@dataclass(frozen=True)
class AlertGroup:
    key: str
    severity: Severity | None  # the worst of its alerts
    alerts: tuple[Alert, ...]

    @property
    def firing(self) -> int:
        return sum(1 for a in self.alerts if a.status == "firing")


def _rank(severity: Severity | None) -> int:
    return severity.rank if severity is not None else 9


def group_alerts(alerts: Iterable[Alert], limit: int = PAGE_ROWS) -> tuple[list[AlertGroup], int]:
    """Alerts grouped by group key, worst group first (then most recent), each group's alerts
    worst and newest first; at most `limit` alerts kept. Returns (groups, alerts left out)."""
    by_key: dict[str, list[Alert]] = {}
    for a in alerts:
        by_key.setdefault(a.group_key or a.name, []).append(a)
    groups = []
    for key, members in by_key.items():
        members.sort(key=lambda a: (a.status != "firing", _rank(a.severity),
                                    -a.starts_at.timestamp()))
        worst = min((a.severity for a in members if a.severity is not None), key=_rank,
                    default=None)
        groups.append(AlertGroup(key, worst, tuple(members)))
    groups.sort(key=lambda g: (g.firing == 0, _rank(g.severity),
                               -max(a.starts_at.timestamp() for a in g.alerts)))
    kept: list[AlertGroup] = []
    room = limit
    for g in groups:
        if room <= 0:
            break
        kept.append(AlertGroup(g.key, g.severity, g.alerts[:room]))
        room -= len(kept[-1].alerts)
    shown = sum(len(g.alerts) for g in kept)
    return kept, sum(len(g.alerts) for g in groups) - shown


def silence_batches(alerts: Sequence[Alert], silences: Sequence[Silence]
                    ) -> list[tuple[list[Alert], list[Silence]]]:
    """The alerts in batches, each with the only silences that can mute them (in their given
    order), so that working out why alerts are quiet checks each against a few silences, not
    every one. A silence with an equality matcher on a non-empty value (`name="value"`) can
    mute only alerts with that label value; one without is kept for every alert."""
    keyed: dict[tuple[str, str], list[tuple[int, Silence]]] = {}
    loose: list[tuple[int, Silence]] = []
    for n, s in enumerate(silences):
        eq = next((m for m in s.matchers if m.type is MatchType.EQUAL and m.value), None)
        if eq is None:
            loose.append((n, s))
        else:
            keyed.setdefault((eq.name, eq.value), []).append((n, s))
    batches: dict[tuple[int, ...], tuple[list[Alert], list[Silence]]] = {}
    for a in alerts:
        found = sorted([*loose, *(hit for item in labels_of(a).items()
                                  for hit in keyed.get(item, ()))], key=lambda hit: hit[0])
        which = tuple(n for n, _ in found)
        if which not in batches:
            batches[which] = ([], [s for _, s in found])
        batches[which][0].append(a)
    return list(batches.values())


# --- incidents -----------------------------------------------------------------------------

SlaState = Literal["ok", "warn", "breached", "met", "missed", "none"]


@dataclass(frozen=True)
class Sla:
    state: SlaState
    text: str


def sla(start: datetime, done: datetime | None, limit: timedelta | None, now: datetime) -> Sla:
    """How an SLA of `limit` from `start` stands at `now`, given when it was met (`done`).
    Open SLAs within their last quarter are `warn`."""
    if limit is None:
        return Sla("none", "no SLA")
    due = start + limit
    if done is not None:
        if done <= due:
            return Sla("met", "met")
        return Sla("missed", f"missed by {format_span(done - due)}")
    if now >= due:
        return Sla("breached", f"breached {format_span(now - due)} ago")
    left = due - now
    return Sla("warn" if left * 4 <= limit else "ok", f"{format_span(left)} left")


@dataclass(frozen=True)
class IncidentRow:
    incident: Incident
    ack: Sla
    resolve: Sla


def incident_rows(incidents: Iterable[Incident], policies: SeverityPolicies,
                  now: datetime) -> list[IncidentRow]:
    """Open incidents first, worst severity first, then oldest first (the longest burning);
    resolved ones after, most recently resolved first."""
    def order(i: Incident) -> tuple[bool, int, float]:
        resolved = i.status is IncidentStatus.RESOLVED
        when = (i.resolved_at or i.opened_at).timestamp()
        return resolved, i.severity.rank if not resolved else 0, -when if resolved else when

    rows = []
    for i in sorted(incidents, key=order):
        policy = policies.for_severity(i.severity)
        rows.append(IncidentRow(i, sla(i.opened_at, i.acknowledged_at, policy.ack_sla, now),
                                sla(i.opened_at, i.resolved_at, policy.resolve_sla, now)))
    return rows


# --- rules: a pasted alert -----------------------------------------------------------------

ALERT_FIELDS = ("name", "source", "status", "labels", "annotations", "value")


class PasteError(ValueError):
    """The pasted text is not an alert; the message says why."""


def _lines(text: str) -> dict[str, str]:
    labels = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise PasteError(f"line {n}: expected label=value, got {line.strip()[:80]!r}")
            labels[key.strip()] = value.strip().strip('"')
    return labels


def pasted_alert(text: str, value: str = "", source: str = "") -> dict[str, Any]:
    """The alert fields (router.ruletest.alert_from_fields) of a pasted alert: YAML/JSON with
    `labels` (an Alertmanager alert, or name/labels/annotations/value), a mapping of labels, or
    `label=value` lines. A non-empty `value` or `source` overrides the pasted one."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raw = None
    if not isinstance(raw, dict):
        raw = {"labels": _lines(text)}
    elif "labels" not in raw:
        raw = {"labels": raw}
    labels = raw.get("labels")
    if not isinstance(labels, dict):
        raise PasteError("labels must be a mapping of label names to values")
    name = raw.get("name") or labels.get("alertname")
    if not name:
        raise PasteError("the alert needs a name: an `alertname` label or a `name` field")
    spec: dict[str, Any] = {k: raw[k] for k in ALERT_FIELDS if k in raw}
    spec["name"] = str(name)
    spec["labels"] = {str(k): str(v) for k, v in labels.items()}
    annotations = raw.get("annotations")
    if isinstance(annotations, dict):
        spec["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    if value.strip():
        try:
            spec["value"] = float(value)
        except ValueError:
            raise PasteError(f"value {value.strip()[:40]!r} is not a number") from None
    if source.strip():
        spec["source"] = source.strip()
    return spec


def distinct(values: Iterable[str | None]) -> Sequence[str]:
    return sorted({v for v in values if v})
