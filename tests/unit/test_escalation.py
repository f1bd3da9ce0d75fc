"""Escalation timing with an injected clock, target resolution, and the on-call config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from router.escalation import (
    EscalationPolicy,
    OnCallConfig,
    escalation_step,
    step_starts,
    targets_at_level,
)

# The methodology's example: levels of 15 min: primary, secondary, then the managers' schedule.
CONFIG = OnCallConfig.model_validate({
    "schedules": [
        {"name": "payments-primary", "time_zone": "Europe/Berlin", "rotation": "weekly",
         "start": "2026-01-05T09:00", "users": ["alice", "bob"]},
        {"name": "payments-secondary", "time_zone": "Europe/Berlin", "rotation": "weekly",
         "start": "2026-01-05T09:00", "users": ["bob", "alice"]},
        {"name": "eng-managers", "time_zone": "America/New_York", "rotation": "daily",
         "start": "2026-01-05T09:00", "users": ["maria", "mike"]},
    ],
    "escalation_policies": [
        {"name": "payments", "repeat": 2, "levels": [
            {"targets": [{"schedule": "payments-primary"}], "delay": "15m"},
            {"targets": [{"schedule": "payments-secondary"}], "delay": "15m"},
            {"targets": [{"schedule": "eng-managers"}, {"user": "cto"}], "delay": "30m"},
        ]},
    ],
    "services": {"checkout": {"escalation_policy": "payments", "team": "payments"}},
})
POLICY = CONFIG.escalation_policies[0]
SCHEDULES = CONFIG.schedule_map()
PAGED = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)  # Tue: alice primary, bob secondary, maria mgr


def m(minutes: float) -> datetime:
    return PAGED + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("now", "acked", "step", "level", "targets", "next_at", "exhausted"),
    [
        # Level 1 at paging time; its deadline is 15 minutes later.
        (m(0), False, 0, 0, ("alice",), m(15), False),
        (m(14.99), False, 0, 0, ("alice",), m(15), False),
        # Not acknowledged after 15 min: level 2.
        (m(15), False, 1, 1, ("bob",), m(30), False),
        # The last level: schedule and user targets together.
        (m(30), False, 2, 2, ("maria", "cto"), m(60), False),
        # Repeat: the second pass starts over at level 1 after the last level's delay.
        (m(60), False, 3, 0, ("alice",), m(75), False),
        (m(75), False, 4, 1, ("bob",), m(90), False),
        # The last step of the last pass: nothing more is due.
        (m(90), False, 5, 2, ("maria", "cto"), None, True),
        # ... and its targets are who is on call *now* (the managers handed off at 14:00 UTC).
        (m(600), False, 5, 2, ("mike", "cto"), None, True),
        # Acknowledged: the step stays and no deadline remains.
        (m(5), True, 0, 0, ("alice",), None, False),
        (m(20), True, 1, 1, ("bob",), None, False),
        # A clock behind the page counts as step 0.
        (m(-1), False, 0, 0, ("alice",), m(15), False),
        # A timer that fires late lands on the step due by then (the engine pages it once).
        (m(47), False, 2, 2, ("maria", "cto"), m(60), False),
    ],
)
def test_escalation_step(
    now: datetime, acked: bool, step: int, level: int, targets: tuple[str, ...],
    next_at: datetime | None, exhausted: bool,
) -> None:
    state = escalation_step(POLICY, SCHEDULES, PAGED, acked, now)
    assert (state.step, state.level, state.targets, state.next_at, state.exhausted) == (
        step, level, targets, next_at, exhausted)
    assert state.acked is acked
    assert state.repeat_pass == step // 3


def test_timer_loop_pages_each_level_once() -> None:
    """What the engine does: arm next_at, fire it, repeat until None."""
    pages: list[tuple[int, datetime, tuple[str, ...]]] = []
    now: datetime | None = PAGED
    while now is not None:
        state = escalation_step(POLICY, SCHEDULES, PAGED, False, now)
        pages.append((state.step, now, state.targets))
        now = state.next_at
    assert [(s, (t - PAGED) / timedelta(minutes=1)) for s, t, _ in pages] == [
        (0, 0), (1, 15), (2, 30), (3, 60), (4, 75), (5, 90)]


def test_targets_resolve_at_the_moment_of_paging() -> None:
    # Next Monday 09:00 Berlin the primary hands off from alice to bob.
    handoff = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
    paged = handoff - timedelta(minutes=10)
    assert escalation_step(POLICY, SCHEDULES, paged, False, paged).targets == ("alice",)
    later = escalation_step(POLICY, SCHEDULES, paged, False, paged + timedelta(minutes=60))
    assert (later.level, later.targets) == (0, ("bob",))


def test_duplicate_targets_are_paged_once() -> None:
    policy = EscalationPolicy.model_validate({"name": "p", "levels": [{"targets": [
        {"schedule": "payments-primary"}, {"user": "alice"}, {"user": "zed"}]}]})
    assert targets_at_level(policy, SCHEDULES, 0, PAGED) == ("alice", "zed")
    with pytest.raises(ValueError, match="has no level 2"):
        targets_at_level(policy, SCHEDULES, 1, PAGED)
    with pytest.raises(ValueError, match="unknown schedule 'payments-primary'"):
        targets_at_level(policy, {}, 0, PAGED)


def test_step_starts_and_defaults() -> None:
    policy = EscalationPolicy.model_validate(
        {"name": "p", "levels": [{"targets": [{"user": "a"}]}, {"targets": [{"user": "b"}]}]})
    assert policy.repeat == 1
    assert step_starts(policy, PAGED) == [m(0), m(15)]  # default delay 15m
    last = escalation_step(policy, {}, PAGED, False, m(15))
    assert (last.targets, last.next_at, last.exhausted) == (("b",), None, True)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        escalation_step(POLICY, SCHEDULES, PAGED, False, datetime(2026, 1, 6))


def test_service_and_team_lookup() -> None:
    assert CONFIG.policy_for_service("checkout") == POLICY
    assert CONFIG.policy_for_team("payments") == POLICY
    assert CONFIG.policy_for_service("nope") is None
    assert CONFIG.policy_for_team("nope") is None


def oncall(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schedules": [{"name": "s", "users": ["a"], "start": "2026-01-01T00:00"}],
        "escalation_policies": [{"name": "p", "levels": [{"targets": [{"schedule": "s"}]}]}],
        "services": {"api": {"escalation_policy": "p"}},
    }
    return {**base, **kw}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (oncall(escalation_policies=[{"name": "p", "levels": [
            {"targets": [{"schedule": "nope"}]}]}]),
         "escalation policy 'p' names unknown schedule\\(s\\): nope"),
        (oncall(services={"api": {"escalation_policy": "nope"}}),
         "service 'api' names unknown escalation policy 'nope'"),
        (oncall(schedules=[{"name": "s", "users": ["a"], "start": "2026-01-01T00:00"}] * 2),
         "duplicate schedule name\\(s\\): s"),
        (oncall(escalation_policies=[{"name": "p", "levels": [
            {"targets": [{"user": "a"}], "delay": "0s"}]}]), "delay must be positive"),
        (oncall(escalation_policies=[{"name": "p", "levels": [
            {"targets": [{"user": "a"}], "delay": "soon"}]}]), "invalid duration 'soon'"),
        (oncall(escalation_policies=[{"name": "p", "levels": []}]), "at least 1 item"),
        (oncall(escalation_policies=[{"name": "p", "repeat": 0, "levels": [
            {"targets": [{"user": "a"}]}]}]), "greater than or equal to 1"),
        (oncall(escalation_policies=[{"name": "p", "levels": [
            {"targets": [{"team": "a"}]}]}]), "Extra inputs are not permitted"),
    ],
)
def test_config_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OnCallConfig.model_validate(data)
