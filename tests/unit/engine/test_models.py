"""`Frozen.build`/`with_` (the engine's unvalidated constructors) and small cached helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from router.engine.ids import IncidentIds
from router.engine.incidents.formatting import slug
from router.engine.instant import utc
from router.engine.state import AlertState, GroupState, Tick
from router.incidents import Incident, TimelineEntry, TimelineKind
from router.model import Alert, Frozen, Notification, NotificationKind, Severity, Status

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ALERT = Alert(source="am", fingerprint="f", status=Status.FIRING, name="X", starts_at=T0,
              received_at=T0, labels={"a": "b"}, severity=Severity.SEV1)


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (GroupState, {"key": "g"}),
        (GroupState, {"key": "g", "alerts": {"am:f": AlertState(alert=ALERT, time=1.0)},
                      "wait_until": 5.0, "epoch": 2}),
        (AlertState, {"alert": ALERT, "time": 1.0, "changes": (1.0,)}),
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
    one, two = GroupState.build(key="a"), GroupState.build(key="b")
    assert one.alerts == {} and one.alerts is not two.alerts


def test_with_keeps_fields_set_and_does_not_touch_the_original() -> None:
    state = GroupState(key="g")
    changed = state.with_(wait_until=5.0)
    same = changed.with_(wait_until=6.0)
    assert (state.wait_until, changed.wait_until, same.wait_until) == (None, 5.0, 6.0)
    assert state.model_fields_set == {"key"}
    assert changed.model_fields_set == same.model_fields_set == {"key", "wait_until"}
    assert changed.model_copy(update={"epoch": 1}).model_fields_set == {
        "key", "wait_until", "epoch"}
    assert same.model_fields_set == {"key", "wait_until"}  # a shared set is copied first


def test_stored_form_keeps_the_short_names() -> None:
    state = GroupState(key="g", alerts={"am:f": AlertState(alert=ALERT, time=1.0)},
                       wait_until=5.0, epoch=2)
    raw = state.to_bytes()
    assert raw.startswith(b'{"k":"g","a":{"am:f":{"a":{') and b'"w":5.0' in raw
    assert GroupState.from_bytes(raw) == state


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
    counter = IncidentIds()
    assert counter.allocate(at)[0] == expected
    assert counter == IncidentIds()  # allocating returns the next counter, changes nothing


def test_incident_ids_count_per_day_with_the_day_cached() -> None:
    ids = IncidentIds(stride=3, offset=1)
    day2 = T0 + timedelta(days=1)
    got = []
    for at in (T0, T0, day2, day2, T0):
        incident_id, ids = ids.allocate(at)
        got.append(incident_id)
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
