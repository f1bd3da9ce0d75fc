"""The small interfaces both backends (embedded SQLite, Kafka) implement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from router.model import AlertEvent, CommandEvent

LogEvent = AlertEvent | CommandEvent


class LogUnavailable(Exception):
    """The log cannot take the events now; intake answers 503 with Retry-After."""


class Log(Protocol):
    """Intake's only dependency: append events durably, keyed by `model.event_key`.

    Returns only once every event is durable (SQLite commit, or broker ack with acks=all);
    raises LogUnavailable otherwise, in which case none of them may be reported as accepted.
    """

    async def append(self, events: Sequence[LogEvent]) -> None: ...
