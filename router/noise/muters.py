"""The engine's muters (`router.engine.quiet.Muter`): silences, maintenance windows, inhibition
and business hours, each answering "is this firing alert kept quiet now, and until when".

Labels are what silences and inhibition match, as in Alertmanager, plus `alertname` (the
alert's name) when a source did not set it, and the classification the rules gave (`severity`,
`service`, `team`) when the labels lack them, so a silence on `service="checkout"` works for
CloudWatch and generic alerts too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache

from router.engine.quiet import DEFERRED, INHIBITED, MAINTENANCE, SILENCED, Mute
from router.model import Alert, Severity
from router.noise.business_hours import Calendar, defer_until
from router.noise.inhibit import InhibitRule, inhibited_by
from router.noise.matchers import Matchers, parse_matchers
from router.noise.silences import Silence, SilenceState
from router.noise.windows import MaintenanceWindow, current_span
from router.policy import Response


def labels_of(alert: Alert) -> Mapping[str, str]:
    """The labels silences, windows and inhibition rules match (see the module docstring)."""
    extra = {"alertname": alert.name, "severity": alert.severity.value if alert.severity else None,
             "service": alert.service, "team": alert.team}
    missing = {k: v for k, v in extra.items() if v and k not in alert.labels}
    return {**alert.labels, **missing} if missing else alert.labels


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


class SilenceMuter:
    """Active silences (Alertmanager's semantics: all matchers match, start <= now < end)."""

    __slots__ = ("silences",)

    def __init__(self, silences: Iterable[Silence]) -> None:
        self.silences = tuple(silences)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SilenceMuter) and self.silences == other.silences

    def __hash__(self) -> int:
        return hash(tuple(s.id for s in self.silences))

    def mute(self, alert: Alert, now: float) -> Mute | None:
        if not self.silences:
            return None
        at = _at(now)
        labels = labels_of(alert)
        found: Silence | None = None
        for s in self.silences:  # the one that ends last names the mute
            if s.state(at) is SilenceState.ACTIVE and s.matchers.matches(labels) and (
                    found is None or s.ends_at > found.ends_at):
                found = s
        if found is None:
            return None
        return Mute(SILENCED, found.id, found.ends_at.timestamp())


@lru_cache(maxsize=1024)
def parsed_matchers(lines: tuple[str, ...]) -> Matchers:
    """Matcher strings (config) parsed once."""
    out = []
    for line in lines:
        out += list(parse_matchers(line))
    return Matchers(tuple(out))


class WindowMuter:
    """Maintenance windows: alerts matching a window are quiet while it is open; with
    `after: drop`, an alert that started inside an occurrence stays quiet after it closes."""

    __slots__ = ("windows",)

    def __init__(self, windows: Sequence[MaintenanceWindow]) -> None:
        self.windows = tuple(windows)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowMuter) and self.windows == other.windows

    def __hash__(self) -> int:
        return hash(self.windows)

    def mute(self, alert: Alert, now: float) -> Mute | None:
        labels: Mapping[str, str] | None = None
        for w in self.windows:
            labels = labels if labels is not None else labels_of(alert)
            if not parsed_matchers(w.matchers).matches(labels):
                continue
            span = current_span(w, _at(now))
            if span is not None:
                return Mute(MAINTENANCE, w.name, span.end.timestamp())
            if w.after == "drop" and current_span(w, alert.starts_at) is not None:
                return Mute(MAINTENANCE, f"{w.name} (dropped)", None)
        return None


class InhibitMuter:
    """Inhibition rules against the source alerts firing now (label sets)."""

    __slots__ = ("rules", "sources")

    def __init__(self, rules: Sequence[InhibitRule],
                 sources: Iterable[Mapping[str, str]] = ()) -> None:
        self.rules = tuple(rules)
        self.sources = tuple(dict(s) for s in sources)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, InhibitMuter) and self.rules == other.rules
                and self.sources == other.sources)

    def __hash__(self) -> int:
        return hash(self.rules)

    def mute(self, alert: Alert, now: float) -> Mute | None:
        if not self.sources or not self.rules:
            return None
        found = inhibited_by(labels_of(alert), self.sources, self.rules)
        if found is None:
            return None
        source = found.source
        what = source.get("alertname", "alert") + "".join(
            f" {n}={source.get(n, '')}" for n in found.rule.equal)
        return Mute(INHIBITED, what, None)  # lifts when the source resolves


class HoursMuter:
    """Business hours: alerts whose severity's response waits for business hours
    (`chat_business_hours`, `backlog`) are deferred to the next opening of their team's
    calendar (or the default one)."""

    __slots__ = ("calendars", "default", "responses", "teams")

    def __init__(self, responses: Mapping[Severity, Response], calendars: Sequence[Calendar],
                 default: str | None, teams: Mapping[str, str]) -> None:
        self.responses = dict(responses)
        self.calendars = {c.name: c for c in calendars}
        self.default = default
        self.teams = dict(teams)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HoursMuter) and (
            self.responses, self.calendars, self.default, self.teams) == (
            other.responses, other.calendars, other.default, other.teams)

    def __hash__(self) -> int:
        return hash((self.default, tuple(self.calendars)))

    def mute(self, alert: Alert, now: float) -> Mute | None:
        if alert.severity is None:
            return None
        response = self.responses.get(alert.severity)
        if response is None or response in ("page_everyone", "page_oncall"):
            return None
        name = self.teams.get(alert.team or "", self.default)
        cal = self.calendars.get(name or "")
        if cal is None:
            return None
        until = defer_until(response, cal, _at(now))
        if until is None:
            return None
        return Mute(DEFERRED, cal.name, until.timestamp())
