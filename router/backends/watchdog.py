"""The engine watchdog's decision: is an engine with work waiting making no progress?

Timeouts around each broker call catch a call that hangs; this catches everything else that
leaves the engine holding undecided records without deciding them (a consumer that stopped
fetching, a producer wedged in a state no timeout covers). Pure: the runner measures, this
decides, the runner acts (restarts its consumer and producers, fails readiness).
"""

from __future__ import annotations


def stalled(lag: int, last_progress: float, now: float, stall_seconds: float) -> bool:
    """True when records wait (`lag` > 0) and none was decided for `stall_seconds` or longer.

    `last_progress` and `now` are monotonic seconds; `last_progress` is the last time a
    decided position advanced or the lag was 0. Idle is never a stall, however long, and a
    lag that keeps shrinking never is either.
    """
    return lag > 0 and now - last_progress >= stall_seconds
