"""Filtered and summary reads of the current-alerts view: which alerts a list asks for (by the
classified alert's severity, status, service, team and source) and the fields it counts them
by. The embedded backend applies them in SQL on indexed expressions, the Kafka backend on its
in-memory view; `keeps` and `value_of` are the one definition both follow."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, field_validator

from router.model import Alert

# Label names a query can ask for: Prometheus's syntax (the embedded backend puts the name in a
# JSON path).
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The classified fields a silence matches as labels when the alert has no such label
# (router.noise.muters.labels_of).
DERIVED_LABELS: dict[str, str] = {"alertname": "name", "severity": "severity",
                                  "service": "service", "team": "team"}

# A test of an alert's labels as silences see them (`seen_labels`), for `alerts_matching`.
LabelTest = Callable[[Mapping[str, str]], bool]

# The fields a list filters and counts current alerts by.
AlertField = Literal["severity", "status", "service", "team", "source", "group_key"]
ALERT_FIELDS: tuple[AlertField, ...] = get_args(AlertField)


def value_of(alert: Alert, field: AlertField) -> str:
    """The alert's value of `field` as stored ("" when classification left it unset)."""
    match field:
        case "severity":
            return alert.severity.value if alert.severity is not None else ""
        case "status":
            return alert.status.value
        case "service":
            return alert.service or ""
        case "team":
            return alert.team or ""
        case "source":
            return alert.source
        case "group_key":
            return alert.group_key or ""


def seen_labels(labels: Mapping[str, str], derived: Sequence[str | None]) -> Mapping[str, str]:
    """An alert's labels as silences see them (`router.noise.muters.labels_of`) from its stored
    `labels` and classified fields (`derived`: the values of `DERIVED_LABELS`' fields, in its
    order), for a store that reads those without decoding the alert."""
    missing = None  # a loop, no dict made when nothing is missing: this runs once per alert
    for label, value in zip(DERIVED_LABELS, derived, strict=True):
        if value and label not in labels:
            missing = missing or {}
            missing[label] = value
    return {**labels, **missing} if missing else labels


class AlertQuery(BaseModel):
    """Current alerts whose fields equal every value given (None: any)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    severity: str | None = None
    status: str | None = None
    service: str | None = None
    team: str | None = None
    source: str | None = None
    group_key: str | None = None
    # (name, value) pairs the alert's labels as silences see them (`labels_of`: its labels,
    # and alertname, severity, service, team when it has no such label) must all have.
    labels: tuple[tuple[str, str], ...] = ()
    # (name, low, high): the value of that label as silences see it ("" when it has none), as
    # UTF-8, must lie between low and high in byte order (what RE2 bounds a regex's matches by).
    ranges: tuple[tuple[str, bytes, bytes], ...] = ()

    @field_validator("labels", "ranges")
    @classmethod
    def _label_names(cls, items: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], ...]:
        for name, *_ in items:
            if not LABEL_NAME.fullmatch(name):
                raise ValueError(f"label name {name[:60]!r} is not [A-Za-z_][A-Za-z0-9_]*")
        return items

    def given(self) -> dict[AlertField, str]:
        """The fields this query constrains, with their values."""
        return {f: v for f in ALERT_FIELDS if (v := getattr(self, f))}

    def keeps(self, alert: Alert) -> bool:
        return self.predicate()(alert)

    def predicate(self) -> Callable[[Alert], bool]:
        """`keeps` with the query read once, for scanning many alerts."""
        # Here, not at the top: router.noise.muters imports the engine, which imports the
        # backends' interfaces.
        from router.noise.muters import labels_of

        given = tuple(self.given().items())
        seen_keeps = self.label_predicate() if self.labels or self.ranges else None

        def keeps(alert: Alert) -> bool:
            if not all(value_of(alert, f) == v for f, v in given):
                return False
            return seen_keeps is None or seen_keeps(labels_of(alert))

        return keeps

    def label_predicate(self) -> LabelTest:
        """The `labels` and `ranges` part of `keeps`, on labels as silences see them."""
        labels, ranges = self.labels, self.ranges

        def keeps(seen: Mapping[str, str]) -> bool:  # loops, not all(...): once per alert
            for name, value in labels:
                if seen.get(name) != value:
                    return False
            for name, low, high in ranges:  # noqa: SIM110
                if not low <= seen.get(name, "").encode() <= high:
                    return False
            return True

        return keeps
