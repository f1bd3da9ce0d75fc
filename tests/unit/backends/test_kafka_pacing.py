"""The Kafka engine's transaction budget (router/backends/kafka/pacing.py): a token bucket on
an injected monotonic time."""

from __future__ import annotations

import pytest

from router.backends.kafka.pacing import budget_for
from router.tokens import Tokens


@pytest.mark.parametrize(("rate", "takes", "granted"), [
    # (rate/s, times `take` is called at those seconds, which were granted)
    (0.0, [0, 0, 0, 0], [True, True, True, True]),  # no limit
    (10.0, [0, 0, 0.05, 0.1], [True, False, False, True]),  # burst 1, then one per 0.1 s
    (100.0, [0] * 11, [True] * 10 + [False]),  # a tenth of a second saved up: 10 at once
    (100.0, [0] * 10 + [0.01, 0.01], [True] * 11 + [False]),
    (10.0, [0, 5, 5], [True, True, False]),  # a quiet spell saves up at most the burst
])
def test_takes(rate: float, takes: list[float], granted: list[bool]) -> None:
    budget = budget_for(rate)
    assert [budget.take(t) for t in takes] == granted


def test_wait_is_the_time_to_the_next_token() -> None:
    budget = Tokens(rate=10.0, burst=1.0)
    assert budget.wait(0.0) == 0.0
    assert budget.take(0.0)
    assert budget.wait(0.0) == pytest.approx(0.1)
    assert budget.wait(0.04) == pytest.approx(0.06)
    assert not budget.take(0.04)
    assert budget.take(0.1)


def test_no_limit_never_waits() -> None:
    budget = budget_for(0.0)
    assert all(budget.take(0.0) for _ in range(1000))
    assert budget.wait(0.0) == 0.0
