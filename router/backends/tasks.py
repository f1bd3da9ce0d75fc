"""The background tasks the backends run (engine loops, tails, retention): stopping them, and
the periodic pass both backends' retention is."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any


async def cancelled(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (if any) and wait until it has finished."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Periodic:
    """A pass (`run_pass`) every `interval()` seconds in a background task until `stop`. A
    failure of a kind in `recoverable` is logged and the pass tried again at the next tick."""

    name = "periodic"
    recoverable: tuple[type[Exception], ...] = ()
    level = logging.WARNING

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests step it
        self._task: asyncio.Task[None] | None = None

    def interval(self) -> float:
        raise NotImplementedError

    async def run_pass(self) -> object:
        raise NotImplementedError

    def failed(self, exc: Exception) -> str:
        """The log line for a recoverable failure (no secrets: say what, not the payload)."""
        return f"{self.name} failed: {type(exc).__name__}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        await cancelled(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await self.sleep(self.interval())
            try:
                await self.run_pass()
            except self.recoverable as exc:
                self._log.log(self.level, "%s", self.failed(exc))
