"""The engine's transaction budget: how many transactions per second a replica starts, shared
by all its partitions.

Each partition commits its own transaction (its own `transactional_id`, for fencing), and a
transaction costs the router about the same CPU (AddPartitionsToTxn, Produce, EndTxn: three
requests) however many records it carries. Without a budget, transactions per second grow
with the partitions a replica owns, and under load they take the core the decisions need.
With one, a partition whose turn has not come keeps fetching into its next batch, so under
load each transaction carries more records while the rate stays put, and the wait is bounded
by `partitions / rate`; below the rate nothing waits.

A token bucket (`router.tokens`): `rate` tokens a second, at most `burst` saved up (so after a
quiet spell every partition can start at once). Pure: the caller passes the monotonic time.
"""

from __future__ import annotations

from router.tokens import Tokens


def budget_for(rate: float) -> Tokens:
    """The budget for `engine_transactions_per_second`: a tenth of a second's worth saved up,
    at least one."""
    return Tokens(rate=rate, burst=max(1.0, rate / 10))
