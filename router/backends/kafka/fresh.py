"""Events this process appended to the alerts log, kept for its own engine (as the embedded
backend's `_fresh`): a record of a partition this replica owns is decided from the event
intake already holds instead of decoding the record's JSON again (`decode_event` was about 8%
of the router's CPU samples in the closed-loop Kafka delivery row).

Keyed by the record's value, the event's JSON: the decoded event is a function of it alone,
so whichever record carries those bytes (a retried append, a re-read after a rebuild) decodes
to the event held here, and the entry can be made before the send, with no race against the
engine's fetch. The engine takes an entry when it decides a record with that value; what it
never takes (partitions another replica owns, appends that failed, an engine far behind)
leaves oldest first once `limit` entries are held. A missing entry costs only the decode.
"""

from __future__ import annotations

from router.backends.base import LogEvent


class FreshEvents:
    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._events: dict[bytes, LogEvent] = {}

    def put(self, value: bytes, event: LogEvent) -> None:
        """`event`, whose log record's value is `value` (`topics.encode_event`)."""
        events = self._events
        events[value] = event
        while len(events) > self._limit:
            del events[next(iter(events))]  # the oldest: insertion order

    def take(self, value: bytes | None) -> LogEvent | None:
        return None if value is None else self._events.pop(value, None)

    def __len__(self) -> int:
        return len(self._events)
