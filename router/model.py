"""The data that flows through the router: plain frozen models, no I/O.

Every source turns its payload into `Alert`s; rules fill in the classification fields; the
log carries `Event`s (alerts and, later, commands); the engine emits `Notification`s that the
delivery stage sends. Keep this module free of behaviour beyond small derived properties.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

_F = TypeVar("_F", bound="Frozen")


class Frozen(BaseModel):
    """Base for data in flight: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def with_(self: _F, **changes: Any) -> _F:
        """`model_copy(update=changes)` without pydantic's copy machinery, which dominated the
        engine's profile. Like model_copy it does not validate: pass valid values only."""
        obj = _new(type(self))
        _set(obj, "__dict__", {**self.__dict__, **changes})
        fields_set = self.__pydantic_fields_set__
        if not fields_set.issuperset(changes):
            fields_set = fields_set | changes.keys()
        # Shared when unchanged: pydantic copies it before changing it (model_copy).
        _set(obj, "__pydantic_fields_set__", fields_set)
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj

    @classmethod
    def build(cls: type[_F], **values: Any) -> _F:
        """A model from values already valid for it (the engine's own data), without
        validation: fields left out take their defaults. Like `model_construct`, cheaper.

        Every required field must be given, and values must be exactly what validation would
        keep (tuples for tuple fields, enum members, aware datetimes, models): equality and
        JSON then match `cls(**values)`.
        """
        spec = _BUILD.get(cls)
        if spec is None:
            spec = _BUILD[cls] = _build_spec(cls)
        template, factories = spec
        data = dict(template)  # every field, in declaration order (it decides the JSON order)
        data.update(values)
        for name, factory in factories:
            if name not in values:
                data[name] = factory()
        obj = _new(cls)
        _set(obj, "__dict__", data)
        _set(obj, "__pydantic_fields_set__", set(values))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj


_new = object.__new__
_set = object.__setattr__
_Spec = tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]
_BUILD: dict[type[Frozen], _Spec] = {}


def _build_spec(cls: type[Frozen]) -> _Spec:
    template: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    for name, field in cls.model_fields.items():
        template[name] = None if field.is_required() or field.default_factory else field.default
        if field.default_factory is not None:
            factories.append((name, field.default_factory))  # type: ignore[arg-type]
    return template, tuple(factories)


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    """SEV1 is the worst. `rank` orders them so that a lower rank is more severe."""

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"

    @property
    def rank(self) -> int:
        return int(self[3])  # a str itself: no (slow) Enum.value

    def at_least(self, other: Severity) -> bool:
        """True when self is as severe as `other` or worse."""
        return str.__le__(self, other)  # "SEV1" < "SEV2": the rank digit, without Enum.value


class Alert(Frozen):
    """One alert from any source, normalised. Rules fill in the classification fields."""

    source: str
    fingerprint: str
    status: Status
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    value: float | None = None
    starts_at: datetime
    ends_at: datetime | None = None
    received_at: datetime
    generator_url: str | None = None
    # Filled in by classification (router.rules); None/empty until then.
    severity: Severity | None = None
    team: str | None = None
    service: str | None = None
    runbook_url: str | None = None
    dashboard_url: str | None = None
    receivers: tuple[str, ...] = ()
    group_key: str | None = None
    rule: str | None = None
    # Per-rule overrides of the severity policy's grouping timers (None: the policy's).
    group_wait: timedelta | None = None
    group_interval: timedelta | None = None
    repeat_interval: timedelta | None = None

    @classmethod
    def trusted(cls, **values: Any) -> Alert:
        """An Alert from values a source already validated: no second validation on the hot
        path (pydantic's model_construct costs ~10 us an alert, this ~1 us)."""
        return _trusted({**_ALERT_DEFAULTS, "labels": {}, "annotations": {}, **values})

    def replace(self, **changes: Any) -> Alert:
        """A copy with `changes` (already valid values), e.g. the classification fields."""
        return _trusted({**self.__dict__, **changes})

    @property
    def key(self) -> str:
        """Identity of the alert across deliveries: source plus the source's fingerprint."""
        return f"{self.source}:{self.fingerprint}"

    @property
    def event_time(self) -> datetime:
        """The source's own clock for this state: ends_at when resolved, else starts_at."""
        if self.status is Status.RESOLVED and self.ends_at is not None:
            return self.ends_at
        return self.starts_at


_ALERT_DEFAULTS: dict[str, Any] = {
    name: field.default
    for name, field in Alert.model_fields.items()
    if not field.is_required() and field.default_factory is None
}
_ALERT_FIELDS = frozenset(Alert.model_fields)


def _trusted(values: dict[str, Any]) -> Alert:
    obj = object.__new__(Alert)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", _ALERT_FIELDS)
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


class AlertEvent(Frozen):
    """An accepted (and classified) alert, as appended to the log."""

    kind: Literal["alert"] = "alert"
    alert: Alert

    @classmethod
    def of(cls, alert: Alert) -> AlertEvent:
        """Wrap an already valid alert without validating it again (intake hot path)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", {"kind": "alert", "alert": alert})
        object.__setattr__(obj, "__pydantic_fields_set__", _EVENT_FIELDS)
        object.__setattr__(obj, "__pydantic_extra__", None)
        object.__setattr__(obj, "__pydantic_private__", None)
        return obj


_EVENT_FIELDS = frozenset({"kind", "alert"})


class CommandEvent(Frozen):
    """A human or integration command on an incident (ack, resolve, update, page, declare)."""

    kind: Literal["command"] = "command"
    command: str
    incident_id: str | None = None
    group_key: str | None = None
    actor: str
    at: datetime
    args: dict[str, Any] = Field(default_factory=dict)


class AlertsEvent(Frozen):
    """Alerts of one source request that share a group key, as one log record: the engine
    decides them together, so a group's first notification carries all of them wherever a
    consumer's fetch of the log happens to end (a single alert stays an `AlertEvent`)."""

    kind: Literal["alerts"] = "alerts"
    alerts: tuple[Alert, ...] = Field(min_length=1)

    @classmethod
    def of(cls, alerts: tuple[Alert, ...]) -> AlertsEvent:
        """Wrap already valid alerts without validating them again (intake hot path)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", {"kind": "alerts", "alerts": alerts})
        object.__setattr__(obj, "__pydantic_fields_set__", _ALERTS_FIELDS)
        object.__setattr__(obj, "__pydantic_extra__", None)
        object.__setattr__(obj, "__pydantic_private__", None)
        return obj


_ALERTS_FIELDS = frozenset({"kind", "alerts"})

Event = Annotated[AlertEvent | AlertsEvent | CommandEvent, Field(discriminator="kind")]


def group_key_for(name: str, service: str | None) -> str:
    """The group key when no rule's `group_by` set one: alert name plus service (the one
    definition: the rules, the log and the engine use it)."""
    return f"{name}|{service or ''}"


def default_group_key(alert: Alert) -> str:
    return group_key_for(alert.name, alert.service)


def event_key(event: AlertEvent | AlertsEvent | CommandEvent) -> str:
    """The log key: the group key, so every event of one incident reaches one owner."""
    if isinstance(event, AlertEvent):
        return event.alert.group_key or default_group_key(event.alert)
    if isinstance(event, AlertsEvent):
        first = event.alerts[0]
        return first.group_key or default_group_key(first)
    return event.group_key or event.incident_id or ""


def decided_whole(events: Sequence[AlertEvent | AlertsEvent | CommandEvent]
                  ) -> list[AlertEvent | AlertsEvent | CommandEvent]:
    """The events of one source request for the log: the alerts that share a group key become
    one `AlertsEvent` (in the position of the first), the rest stay as they are."""
    by_key: dict[str, list[Alert]] = {}
    for e in events:
        if isinstance(e, AlertEvent):
            by_key.setdefault(event_key(e), []).append(e.alert)
    if len(by_key) == sum(1 for e in events if isinstance(e, AlertEvent)):
        return list(events)  # no two alerts share a group: nothing to join
    out: list[AlertEvent | AlertsEvent | CommandEvent] = []
    for e in events:
        if not isinstance(e, AlertEvent):
            out.append(e)
            continue
        alerts = by_key.pop(event_key(e), None)
        if alerts is None:
            continue  # joined into the first alert of its group
        out.append(AlertsEvent.of(tuple(alerts)) if len(alerts) > 1 else e)
    return out


class NotificationKind(StrEnum):
    TRIGGER = "trigger"
    UPDATE = "update"
    REPEAT = "repeat"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    ESCALATE = "escalate"
    SLA_BREACH = "sla_breach"
    REMINDER = "reminder"
    # A page to on-call people (incident escalation level or `/incident page`): details carry
    # `targets` (users) and `level` (1-based escalation level, None for a hand page).
    PAGE = "page"


class Notification(Frozen):
    """One message for one receiver, emitted by the engine into the outbox.

    `id` is deterministic (derived from the decision), so a redelivery after a crash carries the
    same id and the same vendor dedup key.
    """

    id: str
    receiver: str
    kind: NotificationKind
    group_key: str
    dedup_key: str
    severity: Severity
    title: str
    alerts: tuple[Alert, ...] = ()
    incident_id: str | None = None
    created_at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


def utcnow() -> datetime:
    return datetime.now(UTC)


def stable_id(*parts: str) -> str:
    """A short deterministic id from parts (used for dedup keys and notification ids)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
