"""The engine's transaction budget: how many transactions per second a replica starts, shared
by all its partitions.

Each partition commits its own transaction (its own `transactional_id`, for fencing), and a
transaction costs the router about the same CPU (AddPartitionsToTxn, Produce, EndTxn: three
requests) however many records it carries. Without a budget, transactions per second grow
with the partitions a replica owns, and under load they take the core the decisions need.
With one, a partition whose turn has not come keeps fetching into its next batch, so under
load each transaction carries more records while the rate stays put, and the wait is bounded
by `partitions / rate`; below the rate nothing waits.

A token bucket: `rate` tokens a second, at most `burst` saved up (so after a quiet spell every
partition can start at once). Pure: the caller passes the monotonic time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TransactionBudget:
    """`take` a transaction if the budget allows one now; `wait` says for how long not."""

    rate: float  # transactions per second; 0: no limit
    burst: float  # at most this many at once
    tokens: float = 0.0
    stamp: float = float("-inf")  # monotonic time of the last refill

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            elapsed = now - self.stamp
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now

    def take(self, now: float) -> bool:
        """One transaction may start at `now` (and is counted), or not."""
        if self.rate <= 0:
            return True
        self._refill(now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def wait(self, now: float) -> float:
        """Seconds from `now` until `take` can succeed (0: now)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)


def budget_for(rate: float) -> TransactionBudget:
    """The budget for `engine_transactions_per_second`: a tenth of a second's worth saved up,
    at least one."""
    return TransactionBudget(rate=rate, burst=max(1.0, rate / 10))
