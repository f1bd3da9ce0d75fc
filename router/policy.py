"""The severity policy: what each SEV level promises (SLAs), how it responds, who hears it.

Defaults follow the incident-management conventions: SEV1 acknowledge in 15 min and resolve in
1 h, SEV2 30 min / 4 h, SEV3 4 h / 24 h, SEV4 best effort (no SLA).

A level written in the config merges with its built-in default key by key, so
`severities: {SEV1: {receivers: [pd]}}` keeps SEV1's SLAs, timers and response; a key set to
null (e.g. `ack_sla: null`) turns that default off.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.durations import Duration
from router.model import Severity

Response = Literal["page_everyone", "page_oncall", "chat_business_hours", "backlog"]
# Where a severity's group notifications go: its receivers (`page`), the daily digest
# (`digest`), or the ticket receivers (`ticket`); `router.noise.digest`.
Route = Literal["page", "digest", "ticket"]


class SeverityPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = ""
    ack_sla: Duration | None = None
    resolve_sla: Duration | None = None
    response: Response = "backlog"
    receivers: list[str] = Field(default_factory=list)
    route: Route = "page"
    # An incident opened by alerts resolves itself when all of its alerts have resolved;
    # false keeps it open until a person resolves it (declared incidents always wait).
    auto_resolve: bool = True
    # The incident process (docs/incidents.md): remind the commander when no update was posted
    # for this long; an acknowledged incident not resolved this long after the acknowledgement
    # pages the on-call again; an incident with nothing firing and no human action for this
    # long resolves itself. None turns each off.
    update_every: Duration | None = None
    ack_timeout: Duration | None = None
    auto_resolve_after: Duration | None = None
    # Grouping and reminders, like Alertmanager's group_wait/group_interval/repeat_interval.
    group_wait: Duration = timedelta(seconds=30)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=4)


def _m(n: int) -> timedelta:
    return timedelta(minutes=n)


DEFAULT_POLICIES: dict[Severity, SeverityPolicy] = {
    Severity.SEV1: SeverityPolicy(
        description="Critical: customer-facing outage or data loss",
        ack_sla=_m(15), resolve_sla=_m(60), response="page_everyone",
        update_every=_m(15), ack_timeout=_m(30), auto_resolve_after=_m(240),
        group_wait=timedelta(seconds=0), group_interval=_m(1), repeat_interval=_m(30),
    ),
    Severity.SEV2: SeverityPolicy(
        description="Major: significant degradation for many users",
        ack_sla=_m(30), resolve_sla=_m(240), response="page_oncall",
        update_every=_m(30), ack_timeout=_m(30), auto_resolve_after=_m(240),
        group_wait=timedelta(seconds=10), group_interval=_m(2), repeat_interval=_m(60),
    ),
    Severity.SEV3: SeverityPolicy(
        description="Minor: limited impact, workaround exists",
        ack_sla=_m(240), resolve_sla=_m(1440), response="chat_business_hours",
        update_every=_m(1440), auto_resolve_after=_m(1440),
        group_wait=timedelta(seconds=30), group_interval=_m(5), repeat_interval=_m(240),
    ),
    Severity.SEV4: SeverityPolicy(
        description="Low: cosmetic or internal, best effort",
        response="backlog",
        group_wait=timedelta(seconds=60), group_interval=_m(10), repeat_interval=_m(1440),
    ),
}


class SeverityPolicies(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    SEV1: SeverityPolicy = DEFAULT_POLICIES[Severity.SEV1]
    SEV2: SeverityPolicy = DEFAULT_POLICIES[Severity.SEV2]
    SEV3: SeverityPolicy = DEFAULT_POLICIES[Severity.SEV3]
    SEV4: SeverityPolicy = DEFAULT_POLICIES[Severity.SEV4]

    @model_validator(mode="before")
    @classmethod
    def _merge_with_defaults(cls, data: Any) -> Any:
        """A level given as a mapping (the config file) overrides its default key by key; a
        SeverityPolicy object (built in code) replaces it whole."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for severity, default in DEFAULT_POLICIES.items():
            given = data.get(severity.value)
            if isinstance(given, dict):
                merged[severity.value] = {**dict(default), **given}
        return merged

    def for_severity(self, severity: Severity) -> SeverityPolicy:
        # A StrEnum member is its value: no (slow) Enum.value on this hot path.
        policy: SeverityPolicy = self.__dict__[severity]
        return policy
