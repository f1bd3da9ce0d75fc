"""The Kafka backend's appended events kept for the engine (router/backends/kafka/fresh.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from router.backends.kafka.fresh import FreshEvents
from router.backends.kafka.topics import decode_event, encode_event
from router.model import Alert, AlertEvent, Severity, Status

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def event(fp: str) -> AlertEvent:
    return AlertEvent(alert=Alert(
        source="alertmanager", fingerprint=fp, status=Status.FIRING, name="HighErrorRate",
        service="checkout", starts_at=AT, received_at=AT, severity=Severity.SEV1,
        receivers=("pd",), labels={"env": "prod"},
    ))


def test_a_record_is_decided_from_the_event_its_value_was_encoded_from() -> None:
    fresh = FreshEvents()
    e = event("fp-1")
    _, value = encode_event(e)
    fresh.put(value, e)
    assert fresh.take(bytes(value)) is e  # the consumer's copy of the bytes
    assert fresh.take(value) is None  # taken once: a re-read decodes
    assert decode_event(value) == e  # what the decode would have given


def test_unknown_values_and_tombstones_are_decoded() -> None:
    fresh = FreshEvents()
    assert fresh.take(b'{"kind":"alert"}') is None
    assert fresh.take(None) is None


def test_at_most_limit_entries_the_oldest_leave_first() -> None:
    fresh = FreshEvents(limit=2)
    values = []
    for i in range(3):
        e = event(f"fp-{i}")
        values.append(encode_event(e)[1])
        fresh.put(values[-1], e)
    assert len(fresh) == 2
    assert fresh.take(values[0]) is None
    assert fresh.take(values[1]) is not None
    assert fresh.take(values[2]) is not None


def test_a_zero_limit_holds_nothing() -> None:
    fresh = FreshEvents(0)
    e = event("fp-1")
    fresh.put(encode_event(e)[1], e)
    assert len(fresh) == 0
