"""Incidents as the read side sees them, and the commands that change them.

The engine (single writer per group key) owns incident state; after each commit it writes the
`Incident` view of every changed incident to the backend's incident view (SQLite table on the
embedded backend, compacted `<prefix>.incidents-view` topic on Kafka), which the REST API, Slack
commands, the status page and the post-mortem read. Commands reach the engine as
`router.model.CommandEvent`s through the log, so they work the same on both backends and on
any replica.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from router.model import Frozen, Severity


class IncidentStatus(StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class TimelineKind(StrEnum):
    OPENED = "opened"  # declared by hand or opened by alerts
    ALERT_FIRED = "alert_fired"
    ALERT_RESOLVED = "alert_resolved"
    NOTIFIED = "notified"
    PAGED = "paged"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    STATUS_UPDATE = "status_update"
    SEVERITY_CHANGE = "severity_change"
    SLA_BREACH = "sla_breach"
    RESOLVED = "resolved"
    POSTMORTEM = "postmortem"


class TimelineEntry(Frozen):
    at: datetime  # UTC
    kind: TimelineKind
    actor: str  # "router", "alertmanager", a user ("slack:U123", "api:token-name"), ...
    text: str


class Incident(Frozen):
    id: str  # INC-YYYYMMDD-N
    group_key: str  # the log key its events travel under
    title: str
    severity: Severity
    status: IncidentStatus = IncidentStatus.INVESTIGATING
    commander: str | None = None
    channel: str  # "#inc-YYYYMMDD-<slug>"
    impact: str = ""
    service: str | None = None
    team: str | None = None
    alerts: tuple[str, ...] = ()  # Alert.key of attached alerts
    opened_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    root_cause: str | None = None
    mitigation: str | None = None
    escalation_level: int | None = None  # current escalation step while paging
    postmortem_done: bool = False
    timeline: tuple[TimelineEntry, ...] = ()
    # Free-form extras (e.g. paged users, breached SLAs) for templates and the API.
    details: dict[str, object] = Field(default_factory=dict)


class Command(StrEnum):
    """`CommandEvent.command` values and their `args`."""

    DECLARE = "declare"  # args: title, severity, impact?, commander?, service?
    ACK = "ack"  # args: -
    UPDATE = "update"  # args: message?, status?, severity?, root_cause?, mitigation?, eta?
    RESOLVE = "resolve"  # args: message?
    PAGE = "page"  # args: target, target_kind ("user" | "team")
    POSTMORTEM_DONE = "postmortem_done"  # args: url?
