"""Back-pressure from the engine and delivery to intake, shared by both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from router.config import IntakeGateConfig


def over_limits(limits: IntakeGateConfig, engine_lag: int, delivery_backlog: int) -> bool:
    """Whether intake should wait: a limit of 0 is off."""
    lag, backlog = limits.intake_max_engine_lag, limits.intake_max_delivery_backlog
    return bool((lag and engine_lag > lag) or (backlog and delivery_backlog > backlog))


class IntakeGate:
    """Back-pressure from the engine and delivery to intake in the same process.

    Intake, the engine and delivery share one event loop. A closed-loop
    client keeps intake busy and the others fall behind without limit: appends are accepted
    faster than they are decided and delivered. While `behind()` holds, an append waits
    (before its produce, so nothing about a 2xx changes) until a round of the engine or a
    delivery makes progress, at most `max_wait` seconds; then it goes ahead anyway, so a
    stuck engine or receiver never stops intake.
    """

    def __init__(self, behind: Callable[[], bool], max_wait: float = 0.5) -> None:
        self._behind = behind
        self._max_wait = max_wait
        self._progress = asyncio.Event()
        self.waits = 0  # appends that waited (tests, tuning)

    def poke(self) -> None:
        """Progress was made: waiting appends look again."""
        self._progress.set()

    async def wait(self) -> None:
        if not self._behind():
            return
        self.waits += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        while self._behind():
            if loop.time() >= deadline:
                return
            self._progress.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._progress.wait()
            except TimeoutError:
                return
