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
from router.policy import SeverityPolicies
from router.postmortem import ActionItem as PostmortemAction
from router.postmortem import IncidentUpdate, PostmortemAlert, PostmortemInput
from router.postmortem import TimelineEntry as PostmortemEntry


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
    REOPENED = "reopened"  # fired again within the reopen window of its resolution
    REMINDER = "reminder"  # an update is due, an action item is overdue
    ACTION_ITEM = "action_item"  # an action item added or changed
    QUIETED = "quieted"  # an alert silenced, in maintenance, inhibited or deferred, or back
    POSTMORTEM = "postmortem"
    NOTE = "note"  # a message of the incident channel marked by a responder, /incident note


class TimelineEntry(Frozen):
    """One line of an incident's timeline. Timelines are kept sorted by `at`, the time the
    thing happened (an alert's own start, a command's time); `recorded_at` is when the engine
    wrote it down (None in views written before it existed)."""

    at: datetime  # UTC
    kind: TimelineKind
    actor: str  # "router", "alertmanager", a user ("slack:U123", "api:token-name"), ...
    text: str
    recorded_at: datetime | None = None


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

    @property
    def open(self) -> bool:
        """Not resolved: the one definition of an open incident (the engine, the API, the
        status page and Slack all use it)."""
        return self.resolved_at is None


class Command(StrEnum):
    """`CommandEvent.command` values and their `args`."""

    DECLARE = "declare"  # args: title, severity, impact?, commander?, service?
    ACK = "ack"  # args: -
    UPDATE = "update"  # args: message?, status?, severity?, root_cause?, mitigation?, eta?
    RESOLVE = "resolve"  # args: message?
    PAGE = "page"  # args: target, target_kind ("user" | "team")
    POSTMORTEM_DONE = "postmortem_done"  # args: url?
    ACTION = "action"  # args: text, owner?, due? (YYYY-MM-DD): a post-mortem action item
    ACTION_UPDATE = "action_update"  # args: id, status ("open" | "done")
    NOTE = "note"  # args: text, ts? (the Slack message marked): a timeline note
    POSTMORTEM_PUBLISH = "postmortem_publish"  # args: text (the post-mortem, Markdown)


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def postmortem_input(incident: Incident, policies: SeverityPolicies) -> PostmortemInput:
    """The post-mortem renderer's input, from an incident view and the severity policies.

    Impact starts at the first alert's start (`details.started_at`, else the opening);
    detection is the opening; SLAs are the incident's (final) severity's.
    """
    d = incident.details
    policy = policies.for_severity(incident.severity)
    info = d.get("alert_info")
    alerts = [
        PostmortemAlert(name=str(a.get("name") or key), service=a.get("service"),
                        started_at=_time(a.get("started_at")),
                        ended_at=_time(a.get("ended_at")))
        for key, a in (info.items() if isinstance(info, dict) else ())
        if isinstance(a, dict)
    ]
    raw_updates = d.get("updates")
    raw_items = d.get("action_items")
    updates = [
        IncidentUpdate(at=at, status=u.get("status"),
                       message=str(u.get("message") or u.get("summary") or ""))
        for u in (raw_updates if isinstance(raw_updates, list) else ())
        if isinstance(u, dict) and (at := _time(u.get("at"))) is not None
    ]
    return PostmortemInput(
        incident_id=incident.id,
        title=incident.title,
        severity=incident.severity,
        severity_description=policy.description or None,
        commander=incident.commander,
        service=incident.service,
        started_at=_time(d.get("started_at")) or incident.opened_at,
        detected_at=incident.opened_at,
        acknowledged_at=incident.acknowledged_at,
        resolved_at=incident.resolved_at,
        impact=incident.impact or None,
        alerts=alerts,
        timeline=[PostmortemEntry(at=e.at, kind=e.kind.value, actor=e.actor, text=e.text)
                  for e in incident.timeline],
        updates=updates,
        action_items=[
            PostmortemAction(action=str(a.get("text", "")), owner=_opt_str(a.get("owner")),
                             due=_opt_str(a.get("due")), status=_opt_str(a.get("status")))
            for a in (raw_items if isinstance(raw_items, list) else ()) if isinstance(a, dict)],
        authors=_authors(incident, raw_updates),
        users_affected=_opt_str(d.get("users_affected")),
        revenue_impact=_opt_str(d.get("revenue_impact")),
        slo_note=_opt_str(d.get("slo_impact")),
        root_cause=incident.root_cause,
        mitigation=incident.mitigation or _opt_str(d.get("resolution")),
        ack_sla=policy.ack_sla,
        resolve_sla=policy.resolve_sla,
    )


def _authors(incident: Incident, updates: object) -> list[str]:
    people = [incident.commander] if incident.commander else []
    for u in updates if isinstance(updates, list) else ():
        by = u.get("by") if isinstance(u, dict) else None
        if isinstance(by, str) and by and by not in people:
            people.append(by)
    return people


def _opt_str(value: object) -> str | None:
    return str(value) if value else None
