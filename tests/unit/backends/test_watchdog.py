"""The engine watchdog's decision, as a table: lag (None: the broker did not say), an overdue
timer, last progress, now -> restart or not."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from router.backends.kafka.engine import _within
from router.backends.watchdog import MAX_BACKOFF, stall_limit, stalled

LIMIT = 30.0


@pytest.mark.parametrize(
    ("lag", "overdue", "last_progress", "now", "restart"),
    [
        (0, False, 0.0, 10_000.0, False),    # idle for hours: nothing waits, no stall
        (-1, False, 0.0, 10_000.0, False),   # a racing end offset below the position: no lag
        (2, False, 100.0, 100.0, False),     # records just arrived
        (2, False, 100.0, 129.9, False),     # waiting, but under the limit
        (2, False, 100.0, 130.0, True),      # the limit reached: the 4.6-minute stall ends here
        (2, False, 100.0, 373.0, True),      # the reported stall (4 min 33 s, lag 2)
        (5000, False, 100.0, 129.0, False),  # far behind but deciding: progress moved recently
        (1, False, 100.0, 50.0, False),      # clock before the last progress (restart reset it)
        # The broker does not answer (NotLeaderForPartition after its restart): unknown, not 0.
        (None, False, 100.0, 129.9, False),  # unknown, under the limit
        (None, False, 100.0, 130.0, True),   # unknown and nothing decided: a stall
        # No records wait but a timer is past due and its decision never commits.
        (0, True, 100.0, 129.9, False),
        (0, True, 100.0, 130.0, True),
    ],
)
def test_restart_only_when_work_waits_and_none_was_done_for_the_limit(
    lag: int | None, overdue: bool, last_progress: float, now: float, restart: bool
) -> None:
    assert stalled(lag, overdue, last_progress, now, LIMIT) is restart


@pytest.mark.parametrize(
    ("restarts", "limit"),
    [(0, 30.0), (1, 60.0), (2, 120.0), (3, 240.0), (4, 240.0), (50, 30.0 * MAX_BACKOFF)],
)
def test_restarts_in_a_row_back_off_so_a_slow_rejoin_is_not_restarted_forever(
    restarts: int, limit: float
) -> None:
    assert stall_limit(LIMIT, restarts) == limit


async def test_a_stop_that_swallows_its_cancellation_does_not_hold_the_watchdog() -> None:
    """As aiokafka's consumer stop() does while it awaits its coordination task: a timeout
    around it would be swallowed and the watchdog would wait on the wedged client forever."""
    release = asyncio.Event()
    attempts: list[int] = []

    async def stubborn_stop() -> None:
        while not release.is_set():
            attempts.append(1)
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    try:
        await _within(stubborn_stop(), 0.01, "closing the test client")  # returns: left behind
        for _ in range(10):  # let the cancellation land
            await asyncio.sleep(0)
        assert len(attempts) == 2  # it was cancelled, swallowed that, and waits again
    finally:
        release.set()
