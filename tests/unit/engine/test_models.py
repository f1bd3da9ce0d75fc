"""`Frozen.build`/`with_` (the engine's unvalidated constructors) and small cached helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from router.engine.lifecycle import slug, utc
from router.engine.state import AlertState, GroupState, IncidentIds, Tick
from router.incidents import Incident, TimelineEntry, TimelineKind
from router.model import Alert, Frozen, Notification, NotificationKind, Severity, Status

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ALERT = Alert(source="am", fingerprint="f", status=Status.FIRING, name="X", starts_at=T0,
              received_at=T0, labels={"a": "b"}, severity=Severity.SEV1)


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (GroupState, {"k": "g"}),
        (GroupState, {"k": "g", "a": {"am:f": AlertState(a=ALERT, t=1.0)}, "w": 5.0, "e": 2}),
        (AlertState, {"a": ALERT, "t": 1.0, "h": (1.0,)}),
        (Tick, {"group_key": "g"}),
        (TimelineEntry, {"at": T0, "kind": TimelineKind.OPENED, "actor": "router", "text": "t"}),
        (Incident, {"id": "INC-1", "group_key": "g", "title": "t", "severity": Severity.SEV1,
                    "channel": "#c", "opened_at": T0, "details": {"x": [1]}}),
        (Notification, {"id": "i", "receiver": "r", "kind": NotificationKind.TRIGGER,
                        "group_key": "g", "dedup_key": "d", "severity": Severity.SEV2,
                        "title": "t", "alerts": (ALERT,), "created_at": T0}),
    ],
)
def test_build_equals_validated_construction(cls: type[Frozen], values: dict[str, object]) -> None:
    built, validated = cls.build(**values), cls(**values)
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    assert list(built.__dict__) == list(validated.__dict__)  # field order: the JSON's order
    assert built.model_dump_json(exclude_defaults=True) == validated.model_dump_json(
        exclude_defaults=True)
    assert type(built).model_validate_json(built.model_dump_json()) == built


def test_build_gives_each_object_its_own_default_containers() -> None:
    one, two = GroupState.build(k="a"), GroupState.build(k="b")
    assert one.a == {} and one.a is not two.a


def test_with_keeps_fields_set_and_does_not_touch_the_original() -> None:
    state = GroupState(k="g")
    changed = state.with_(w=5.0)
    same = changed.with_(w=6.0)
    assert (state.w, changed.w, same.w) == (None, 5.0, 6.0)
    assert state.model_fields_set == {"k"}
    assert changed.model_fields_set == same.model_fields_set == {"k", "w"}
    assert changed.model_copy(update={"e": 1}).model_fields_set == {"k", "w", "e"}
    assert same.model_fields_set == {"k", "w"}  # a shared set is copied before a change


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (T0, "INC-20260101-1"),
        (datetime(2026, 1, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2))), "INC-20260102-1"),
        (datetime(2026, 1, 2, 0, 30, tzinfo=timezone(timedelta(hours=2))), "INC-20260101-1"),
        (datetime(999, 3, 4, tzinfo=UTC), "INC-09990304-1"),
    ],
)
def test_incident_ids_use_the_utc_day(at: datetime, expected: str) -> None:
    assert IncidentIds().allocate(at) == expected


def test_incident_ids_count_per_day_with_the_day_cached() -> None:
    ids = IncidentIds(stride=3, offset=1)
    day2 = T0 + timedelta(days=1)
    got = [ids.allocate(T0), ids.allocate(T0), ids.allocate(day2), ids.allocate(day2),
           ids.allocate(T0)]
    assert got == ["INC-20260101-2", "INC-20260101-5", "INC-20260102-2", "INC-20260102-5",
                   "INC-20260101-2"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T0, T0),
        (datetime(2026, 1, 1, 12, 0), T0),  # naive: taken as UTC
        (datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), T0),
    ],
)
def test_utc(value: datetime, expected: datetime) -> None:
    assert utc(value) == expected and utc(value).tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [("HighErrorRate (checkout)", "higherrorrate-checkout"), ("!!!", "incident"),
     ("x" * 50, "x" * 40)],
)
def test_slug(text: str, expected: str) -> None:
    assert slug(text) == slug(text) == expected
