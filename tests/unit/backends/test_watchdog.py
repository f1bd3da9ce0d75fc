"""The engine watchdog's decision, as a table: lag, last progress, now -> restart or not."""

from __future__ import annotations

import pytest

from router.backends.watchdog import stalled

LIMIT = 30.0


@pytest.mark.parametrize(
    ("lag", "last_progress", "now", "restart"),
    [
        (0, 0.0, 10_000.0, False),   # idle for hours: nothing waits, no stall
        (-1, 0.0, 10_000.0, False),  # a racing end offset below the position is no lag
        (2, 100.0, 100.0, False),    # records just arrived
        (2, 100.0, 129.9, False),    # waiting, but under the limit
        (2, 100.0, 130.0, True),     # the limit reached: the 4.6-minute stall ends here
        (2, 100.0, 373.0, True),     # the reported stall (4 min 33 s, lag 2)
        (5000, 100.0, 129.0, False), # far behind but deciding: progress moved recently
        (1, 100.0, 50.0, False),     # clock before the last progress (restart reset it)
    ],
)
def test_restart_only_when_records_wait_and_none_was_decided_for_the_limit(
    lag: int, last_progress: float, now: float, restart: bool
) -> None:
    assert stalled(lag, last_progress, now, LIMIT) is restart
