"""Retry one notification with tenacity: capped attempts and total time, jittered backoff.

Only retryable results are retried (transport errors, timeouts, 429/420, 5xx, Slack
`ratelimited`); a permanent failure comes back at once so it can be dead-lettered. When the
vendor says `Retry-After`, that wait replaces the computed backoff.

The first attempt is made directly: only a retryable failure sets up tenacity, which then
carries on as if it had made that attempt itself (same attempt count, backoff and deadline).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from router.delivery.result import DeliveryResult


class RetryPolicy(BaseModel):
    """Per-receiver retry settings. Defaults: up to 12 tries within 15 minutes, 1 s .. 2 min."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=12, ge=1)
    max_elapsed_seconds: float = Field(default=900.0, gt=0)
    initial_backoff_seconds: float = Field(default=1.0, ge=0)
    max_backoff_seconds: float = Field(default=120.0, ge=0)
    jitter_seconds: float = Field(default=1.0, ge=0)
    # Longest Retry-After we honour as given; longer asks are capped to this.
    max_retry_after_seconds: float = Field(default=300.0, ge=0)


def _is_retryable(result: DeliveryResult) -> bool:
    return not result.ok and result.retryable


class _Wait:
    """Exponential backoff with jitter, unless the last answer carried Retry-After."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._backoff = wait_exponential_jitter(
            multiplier=policy.initial_backoff_seconds, max=policy.max_backoff_seconds,
            jitter=policy.jitter_seconds,
        )

    def __call__(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            result = outcome.result()
            if isinstance(result, DeliveryResult) and result.retry_after is not None:
                return min(result.retry_after, self._policy.max_retry_after_seconds)
        return float(self._backoff(state))


async def send_with_retry(
    attempt: Callable[[], Awaitable[DeliveryResult]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[DeliveryResult, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DeliveryResult:
    """Call `attempt` until delivered, permanently failed, or the caps are reached.

    Returns the last result; `on_retry(result, sleep_seconds)` is told before each sleep.
    """

    started = time.monotonic()
    return await retry_after(await attempt(), started, attempt, policy, on_retry=on_retry,
                             sleep=sleep)


async def retry_after(
    first: DeliveryResult,
    started: float,
    attempt: Callable[[], Awaitable[DeliveryResult]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[DeliveryResult, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DeliveryResult:
    """`send_with_retry` once its first attempt, made at `started` (time.monotonic), came to
    `first`: a caller that makes that attempt itself sets nothing up for the usual success."""
    if not _is_retryable(first) or policy.max_attempts <= 1:
        return first
    # Tenacity's clock starts now: take the first attempt's time off the elapsed-time cap.
    remaining = policy.max_elapsed_seconds - (time.monotonic() - started)
    if remaining <= 0:
        return first
    replayed = False

    async def attempts() -> DeliveryResult:
        nonlocal replayed
        if not replayed:  # tenacity's attempt 1 is the one already made
            replayed = True
            return first
        return await attempt()

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is None or state.outcome is None or state.next_action is None:
            return
        on_retry(state.outcome.result(), state.next_action.sleep)

    retrying = AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(remaining),
        wait=_Wait(policy),
        retry=retry_if_result(_is_retryable),
        before_sleep=before_sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        reraise=True,
    )
    result: DeliveryResult = await retrying(attempts)
    return result
