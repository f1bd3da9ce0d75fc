"""Escalation policies and the on-call config; where an unacknowledged page stands. Pure, no I/O.

A policy is a list of levels, each with targets (users and/or schedules) and a `delay` before the
next level, run through `repeat` times in total (1 = once, no repeat). Flattened, that is a
sequence of *steps* (pass 0 level 0, pass 0 level 1, ..., pass 1 level 0, ...): step i starts at
`paged_at + sum(delay of steps before i)`.

`escalation_step` is a function of (policy, schedules, paged_at, acked, now) only, so the engine
stores `paged_at` and the returned `next_at` (an absolute deadline) in its state, arms a timer for
`next_at`, and on firing calls it again with `now` = the timer's time. A timer that fires late
(after a restart) lands on the step that is due by then; `step` numbers the page, so the engine
pages each step at most once (notification id from incident id + step).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from router.durations import Duration
from router.oncall import Schedule, who_is_on_call


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UserTarget(_Strict):
    user: str = Field(min_length=1)


class ScheduleTarget(_Strict):
    schedule: str = Field(min_length=1)


Target = UserTarget | ScheduleTarget


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("delay must be positive")
    return value


class EscalationLevel(_Strict):
    targets: list[Target] = Field(min_length=1)
    # Time this level has to acknowledge before the next level is paged.
    delay: Annotated[Duration, AfterValidator(_positive)] = timedelta(minutes=15)


class EscalationPolicy(_Strict):
    name: str = Field(min_length=1)
    levels: list[EscalationLevel] = Field(min_length=1)
    # Total passes through all levels (1 = run through the levels once).
    repeat: int = Field(default=1, ge=1, le=10)

    @property
    def step_count(self) -> int:
        return len(self.levels) * self.repeat

    def schedule_names(self) -> set[str]:
        return {t.schedule for lv in self.levels for t in lv.targets
                if isinstance(t, ScheduleTarget)}


class ServiceConfig(_Strict):
    """A service's owners: its team and the escalation policy that is paged for it."""

    escalation_policy: str = Field(min_length=1)
    team: str | None = None


class OnCallConfig(_Strict):
    """The `oncall` section of router.yaml: schedules, escalation policies, services."""

    schedules: list[Schedule] = Field(default_factory=list)
    escalation_policies: list[EscalationPolicy] = Field(default_factory=list)
    services: dict[str, ServiceConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> OnCallConfig:
        for what, names in (("schedule", [s.name for s in self.schedules]),
                            ("escalation policy", [p.name for p in self.escalation_policies])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {what} name(s): {', '.join(dupes)}")
        schedules = {s.name for s in self.schedules}
        for p in self.escalation_policies:
            missing = sorted(p.schedule_names() - schedules)
            if missing:
                raise ValueError(
                    f"escalation policy {p.name!r} names unknown schedule(s): {', '.join(missing)}"
                )
        policies = {p.name for p in self.escalation_policies}
        for service, cfg in self.services.items():
            if cfg.escalation_policy not in policies:
                raise ValueError(
                    f"service {service!r} names unknown escalation policy "
                    f"{cfg.escalation_policy!r}"
                )
        return self

    def schedule_map(self) -> dict[str, Schedule]:
        return {s.name: s for s in self.schedules}

    def policy(self, name: str) -> EscalationPolicy | None:
        return next((p for p in self.escalation_policies if p.name == name), None)

    def policy_for_service(self, service: str) -> EscalationPolicy | None:
        cfg = self.services.get(service)
        return self.policy(cfg.escalation_policy) if cfg else None

    def policy_for_team(self, team: str) -> EscalationPolicy | None:
        """The policy of the first service owned by `team` (for `/incident page @team`)."""
        for cfg in self.services.values():
            if cfg.team == team:
                return self.policy(cfg.escalation_policy)
        return None


# --- where a page stands -------------------------------------------------------------------


class EscalationState(_Strict):
    """Where a page stands at `now`."""

    step: int  # 0-based over all passes: pass * len(levels) + level
    level: int  # 0-based index into policy.levels
    repeat_pass: int  # 0-based pass through the levels
    targets: tuple[str, ...]  # users paged at this step, resolved at `now`
    step_started_at: datetime  # when this step became due (UTC)
    next_at: datetime | None  # when the next step is due; None if acked or after the last step
    acked: bool
    exhausted: bool  # the last step of the last pass is active


def _level_of(policy: EscalationPolicy, step: int) -> tuple[int, int]:
    repeat_pass, level = divmod(step, len(policy.levels))
    return level, repeat_pass


def step_starts(policy: EscalationPolicy, paged_at: datetime) -> list[datetime]:
    """When each step becomes due (UTC): step 0 at `paged_at`, then after each level's delay."""
    t = _aware(paged_at, "paged_at")
    out = []
    for step in range(policy.step_count):
        out.append(t)
        t = t + policy.levels[_level_of(policy, step)[0]].delay
    return out


def targets_at_level(
    policy: EscalationPolicy, schedules: Mapping[str, Schedule], level: int, at: datetime
) -> tuple[str, ...]:
    """The users a level pages at instant `at`: users as listed, schedules resolved to who is on
    call then; duplicates dropped, order kept."""
    if not 0 <= level < len(policy.levels):
        raise ValueError(f"escalation policy {policy.name!r} has no level {level + 1}")
    users: list[str] = []
    for t in policy.levels[level].targets:
        if isinstance(t, UserTarget):
            user = t.user
        else:
            schedule = schedules.get(t.schedule)
            if schedule is None:
                raise ValueError(f"escalation policy {policy.name!r}: unknown schedule "
                                 f"{t.schedule!r}")
            user = who_is_on_call(schedule, at)
        if user not in users:
            users.append(user)
    return tuple(users)


def escalation_step(
    policy: EscalationPolicy,
    schedules: Mapping[str, Schedule],
    paged_at: datetime,
    acked: bool,
    now: datetime,
) -> EscalationState:
    """Which step is active at `now` for a page sent at `paged_at`, who it pages, and when the
    next step is due. Acknowledged: the step stays where it is and nothing more is due.
    `now` before `paged_at` (clock skew) counts as step 0."""
    now_utc = _aware(now, "now")
    starts = step_starts(policy, paged_at)
    step = max((i for i, t in enumerate(starts) if t <= now_utc), default=0)
    level, repeat_pass = _level_of(policy, step)
    last = step == len(starts) - 1
    return EscalationState(
        step=step,
        level=level,
        repeat_pass=repeat_pass,
        targets=targets_at_level(policy, schedules, level, now_utc),
        step_started_at=starts[step],
        next_at=None if acked or last else starts[step + 1],
        acked=acked,
        exhausted=last,
    )


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value.astimezone(UTC)

