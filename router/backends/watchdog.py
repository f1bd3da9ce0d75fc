"""The engine watchdog's decision: is an engine with work waiting making no progress?

Timeouts around each broker call catch a call that hangs; this catches everything else that
leaves the engine holding undecided work without deciding it (a consumer that stopped
fetching, a producer wedged in a state no timeout covers, a broker that answers nothing).
Pure: the runner measures, this decides, the runner acts (restarts its consumer and producers,
fails readiness).

Unknown is not zero: a lag the broker did not report (`None`) is work that may be waiting, so
the stall clock keeps running; only a lag the broker confirmed as 0 (with no timer overdue)
says the engine is idle. Reading a failed call as "nothing waits" is how a replica once sat
stuck for minutes with its watchdog content.
"""

from __future__ import annotations


def waiting(lag: int | None, overdue: bool) -> bool:
    """Work the engine has to do: records to decide (or a lag nobody could measure), or a
    timer past its deadline."""
    return lag is None or lag > 0 or overdue


MAX_BACKOFF = 8  # the limit grows to at most this many times `stall_seconds`


def stall_limit(stall_seconds: float, restarts: int) -> float:
    """The limit after `restarts` restarts in a row with nothing decided since: doubled each
    time, up to `MAX_BACKOFF` times. A restarted member rejoins the group (a rebalance of every
    member) and restores its partitions; when that takes longer than the limit, restarting it
    again at the same pace would only start the rebalance over, forever."""
    return stall_seconds * min(1 << restarts, MAX_BACKOFF)


def stalled(lag: int | None, overdue: bool, last_progress: float, now: float,
            limit: float) -> bool:
    """True when work waits and nothing was decided for `limit` seconds or longer.

    `last_progress` and `now` are monotonic seconds; `last_progress` is the last time the
    engine moved (a decision committed, a restore read) or was seen with nothing to do. Idle
    is never a stall, however long, and a lag that keeps shrinking never is either.
    """
    return waiting(lag, overdue) and now - last_progress >= limit
