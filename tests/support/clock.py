"""An injected engine clock for the tests: minutes after T0 of tests.unit.engine.test_incidents."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.unit.engine.test_incidents import T0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def set(self, minutes: float) -> None:
        self.now = T0 + timedelta(minutes=minutes)
