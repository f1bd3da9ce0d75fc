"""Answer classification, Retry-After parsing and the retry loop, without a network."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from router.delivery.http import HttpAnswer, Redactor, classify, parse_retry_after
from router.delivery.result import DeliveryResult
from router.delivery.retry import RetryPolicy, send_with_retry

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "seconds"), [
    ("3", 3.0), (" 120 ", 120.0), ("0", 0.0), ("-5", 0.0),
    ("Fri, 27 Nov 2026 10:00:30 GMT", 30.0), ("Fri, 27 Nov 2026 09:59:00 GMT", 0.0),
    ("soon", None), ("", None), (None, None),
])
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(("status", "ok", "reason", "retryable"), [
    (200, True, None, False), (202, True, None, False), (204, True, None, False),
    (301, False, "client_error", False), (400, False, "client_error", False),
    (401, False, "client_error", False), (404, False, "client_error", False),
    (408, False, "server_error", True), (410, False, "client_error", False),
    (420, False, "client_error", False), (429, False, "rate_limited", True),
    (500, False, "server_error", True), (502, False, "server_error", True),
    (503, False, "server_error", True),
])
def test_classify(status: int, ok: bool, reason: str | None, retryable: bool) -> None:
    r = classify(HttpAnswer(status, {}, ""), Redactor([]))
    assert (r.ok, r.reason, r.retryable) == (ok, reason, retryable)


def test_420_is_a_rate_limit_where_the_vendor_says_so() -> None:
    r = classify(HttpAnswer(420, {"Retry-After": "2"}, ""), Redactor([]),
                 rate_limit_statuses=frozenset({420, 429}))
    assert (r.reason, r.retryable, r.retry_after) == ("rate_limited", True, 2.0)


def test_vendor_text_is_redacted() -> None:
    r = classify(HttpAnswer(400, {}, "bad key s3cr3t-key in https://h/x?k=s3cr3t-key"),
                 Redactor(["s3cr3t-key"]))
    assert r.detail == "bad key [redacted] in https://h/x?k=[redacted]"




FAIL = DeliveryResult.failed("server_error", retryable=True, status=500)
POLICY = RetryPolicy(max_attempts=5, initial_backoff_seconds=1, max_backoff_seconds=4,
                     jitter_seconds=0)


async def test_backoff_grows_and_is_capped_then_succeeds() -> None:
    sleeps: list[float] = []
    results = iter([FAIL, FAIL, FAIL, FAIL, DeliveryResult.delivered(200)])

    async def attempt() -> DeliveryResult:
        return next(results)

    async def sleep(s: float) -> None:
        sleeps.append(s)

    result = await send_with_retry(attempt, POLICY, sleep=sleep)
    assert result.ok
    assert sleeps == [1, 2, 4, 4]


async def test_retry_after_replaces_the_backoff() -> None:
    sleeps: list[float] = []
    results = iter([DeliveryResult.failed("rate_limited", retryable=True, retry_after=3.0),
                    DeliveryResult.delivered(200)])

    async def attempt() -> DeliveryResult:
        return next(results)

    async def sleep(s: float) -> None:
        sleeps.append(s)

    assert (await send_with_retry(attempt, POLICY, sleep=sleep)).ok
    assert sleeps == [3.0]


async def test_attempt_cap_returns_the_last_failure() -> None:
    calls = 0

    async def attempt() -> DeliveryResult:
        nonlocal calls
        calls += 1
        return FAIL

    async def sleep(s: float) -> None:
        return None

    result = await send_with_retry(attempt, POLICY, sleep=sleep)
    assert (calls, result) == (5, FAIL)


async def test_permanent_failure_is_not_retried() -> None:
    calls = 0
    permanent = DeliveryResult.failed("client_error", retryable=False, status=400)

    async def attempt() -> DeliveryResult:
        nonlocal calls
        calls += 1
        return permanent

    assert await send_with_retry(attempt, POLICY) == permanent
    assert calls == 1


async def test_total_time_cap_stops_before_a_sleep_that_would_exceed_it() -> None:
    calls = 0
    policy = RetryPolicy(max_attempts=100, max_elapsed_seconds=5, initial_backoff_seconds=1,
                         max_backoff_seconds=1, jitter_seconds=0)
    wait_over_budget = DeliveryResult.failed("rate_limited", retryable=True, retry_after=60.0)

    async def attempt() -> DeliveryResult:
        nonlocal calls
        calls += 1
        return wait_over_budget

    async def sleep(s: float) -> None:
        raise AssertionError("must not sleep past the budget")

    assert await send_with_retry(attempt, policy, sleep=sleep) == wait_over_budget
    assert calls == 1


async def test_the_first_attempt_is_made_directly_and_a_retry_continues_its_count() -> None:
    sleeps: list[float] = []
    told: list[tuple[DeliveryResult, float]] = []
    results = iter([FAIL, DeliveryResult.delivered(200)])
    calls = 0

    async def attempt() -> DeliveryResult:
        nonlocal calls
        calls += 1
        return next(results)

    async def sleep(s: float) -> None:
        sleeps.append(s)

    result = await send_with_retry(attempt, POLICY, sleep=sleep,
                                   on_retry=lambda r, s: told.append((r, s)))
    assert result.ok and calls == 2
    assert sleeps == [1] and told == [(FAIL, 1)]  # the first backoff, not the second


async def test_one_attempt_policy_and_first_success_never_sleep() -> None:
    async def fail() -> DeliveryResult:
        return FAIL

    async def ok() -> DeliveryResult:
        return DeliveryResult.delivered(200)

    async def sleep(s: float) -> None:
        raise AssertionError("no retry expected")

    assert await send_with_retry(fail, RetryPolicy(max_attempts=1), sleep=sleep) == FAIL
    assert (await send_with_retry(ok, POLICY, sleep=sleep)).ok


async def test_the_first_attempts_time_counts_against_the_total_time_cap() -> None:
    calls = 0

    async def slow_failure() -> DeliveryResult:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return FAIL

    policy = RetryPolicy(max_attempts=5, max_elapsed_seconds=0.01, initial_backoff_seconds=0)
    assert await send_with_retry(slow_failure, policy) == FAIL
    assert calls == 1
