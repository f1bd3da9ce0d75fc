"""What the pages show, computed from the read views: pure functions of their inputs and `now`
(table-tested in tests/ui/test_views.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import yaml

from router.incidents import Incident, IncidentStatus
from router.model import Alert, Severity
from router.policy import SeverityPolicies
from router.postmortem import format_span

# --- alerts --------------------------------------------------------------------------------

FILTERS = ("severity", "status", "service", "team", "source")
# Rows the alert list renders at most; the rest is counted ("narrow the filters").
MAX_ROWS = 200


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

    @property
    def needs_scan(self) -> bool:
        """Filters the backend's query cannot apply (it filters status and source only)."""
        return bool(self.severity or self.service or self.team)

    def keeps(self, a: Alert) -> bool:
        return ((not self.severity or a.severity == self.severity)
                and (not self.status or a.status == self.status)
                and (not self.service or a.service == self.service)
                and (not self.team or a.team == self.team)
                and (not self.source or a.source == self.source))

    def query(self) -> str:
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in vars(self).items() if v})


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


def group_alerts(alerts: Iterable[Alert], limit: int = MAX_ROWS) -> tuple[list[AlertGroup], int]:
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
