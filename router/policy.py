"""The severity policy: what each SEV level promises (SLAs), how it responds, who hears it.

Defaults follow the incident-management conventions: SEV1 acknowledge in 15 min and resolve in
1 h, SEV2 30 min / 4 h, SEV3 4 h / 24 h, SEV4 best effort (no SLA).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from router.durations import Duration
from router.model import Severity

Response = Literal["page_everyone", "page_oncall", "chat_business_hours", "backlog"]


class SeverityPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = ""
    ack_sla: Duration | None = None
    resolve_sla: Duration | None = None
    response: Response = "backlog"
    receivers: list[str] = Field(default_factory=list)
    # An incident opened by alerts resolves itself when all of its alerts have resolved;
    # false keeps it open until a person resolves it (declared incidents always wait).
    auto_resolve: bool = True
    # Grouping and reminders, like Alertmanager's group_wait/group_interval/repeat_interval.
    group_wait: Duration = timedelta(seconds=30)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=4)


def _m(n: int) -> timedelta:
    return timedelta(minutes=n)


class SeverityPolicies(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    SEV1: SeverityPolicy = SeverityPolicy(
        description="Critical: customer-facing outage or data loss",
        ack_sla=_m(15), resolve_sla=_m(60), response="page_everyone",
        group_wait=timedelta(seconds=0), group_interval=_m(1), repeat_interval=_m(30),
    )
    SEV2: SeverityPolicy = SeverityPolicy(
        description="Major: significant degradation for many users",
        ack_sla=_m(30), resolve_sla=_m(240), response="page_oncall",
        group_wait=timedelta(seconds=10), group_interval=_m(2), repeat_interval=_m(60),
    )
    SEV3: SeverityPolicy = SeverityPolicy(
        description="Minor: limited impact, workaround exists",
        ack_sla=_m(240), resolve_sla=_m(1440), response="chat_business_hours",
        group_wait=timedelta(seconds=30), group_interval=_m(5), repeat_interval=_m(240),
    )
    SEV4: SeverityPolicy = SeverityPolicy(
        description="Low: cosmetic or internal, best effort",
        response="backlog",
        group_wait=timedelta(seconds=60), group_interval=_m(10), repeat_interval=_m(1440),
    )

    def for_severity(self, severity: Severity) -> SeverityPolicy:
        # A StrEnum member is its value: no (slow) Enum.value on this hot path.
        policy: SeverityPolicy = self.__dict__[severity]
        return policy
