"""A post-mortem draft in Markdown, written from an incident's own record. Pure, no I/O.

The caller (CLI `incident-router postmortem`, `GET /api/v1/incidents/{id}/postmortem`) fills a
`PostmortemInput` from the incident state; `render_postmortem` computes the durations and SLA
verdicts here and lays them out with `templates/postmortem.md.j2`.

Clocks: impact lasts from `started_at` (the first alert's start) to `resolved_at`. Detection is
`detected_at - started_at`. The acknowledge and resolve SLAs run from `detected_at` (when the
router opened the incident, as the engine's SLA timers do). Resolving counts as acknowledging
when nobody acknowledged first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import jinja2
from pydantic import AwareDatetime, Field

from router.model import Frozen, Severity
from router.policy import SeverityPolicies

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "postmortem.md.j2"
POSTMORTEM_DUE = timedelta(hours=48)
TO_BE_FILLED = "_To be filled._"


class TimelineEntry(Frozen):
    at: AwareDatetime
    kind: str  # alert_fired, notified, paged, acknowledged, escalated, status_update, ...
    actor: str | None = None
    text: str = ""


class IncidentUpdate(Frozen):
    at: AwareDatetime
    status: str | None = None  # investigating, identified, monitoring, resolved
    message: str


class PostmortemAlert(Frozen):
    name: str
    service: str | None = None
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None


class ActionItem(Frozen):
    action: str
    owner: str | None = None
    due: str | None = None
    priority: str | None = None
    status: str | None = None  # open, done


class PostmortemInput(Frozen):
    incident_id: str
    title: str
    severity: Severity
    severity_description: str | None = None  # default: the built-in severity ladder's
    commander: str | None = None
    service: str | None = None
    started_at: AwareDatetime
    detected_at: AwareDatetime | None = None
    acknowledged_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    impact: str | None = None
    slo_note: str | None = None
    alerts: list[PostmortemAlert] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    updates: list[IncidentUpdate] = Field(default_factory=list)
    root_cause: str | None = None
    contributing_factors: list[str] = Field(default_factory=list)
    mitigation: str | None = None
    action_items: list[ActionItem] = Field(default_factory=list)
    # The commander and everyone who posted an update; and what an update said of the impact.
    authors: list[str] = Field(default_factory=list)
    users_affected: str | None = None
    revenue_impact: str | None = None
    ack_sla: timedelta | None = None
    resolve_sla: timedelta | None = None


# --- numbers --------------------------------------------------------------------------------


def format_span(value: timedelta) -> str:
    """`2 d 3 h`, `1 h 5 min`, `12 min 30 s`, `45 s`; negative spans (clock skew) as 0 s."""
    total = max(0, round(value.total_seconds()))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size} {unit}")
            total %= size
    return " ".join(parts) or "0 s"


def format_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class SlaCheck(Frozen):
    what: Literal["acknowledged", "resolved"]
    elapsed: timedelta | None  # None: has not happened
    sla: timedelta | None
    met: bool | None  # None: no SLA, or not happened yet

    @property
    def sentence(self) -> str:
        """E.g. "acknowledged after 12 min (SLA 15 min: met)"."""
        if self.elapsed is None:
            head = f"not {self.what}"
        else:
            head = f"{self.what} after {format_span(self.elapsed)}"
        if self.sla is None:
            return f"{head} (no SLA)"
        if self.met is None:
            return f"{head} (SLA {format_span(self.sla)})"
        if self.met:
            return f"{head} (SLA {format_span(self.sla)}: met)"
        over = (self.elapsed or timedelta(0)) - self.sla
        return f"{head} (SLA {format_span(self.sla)}: missed by {format_span(over)})"


def _check(what: Literal["acknowledged", "resolved"], start: datetime, end: datetime | None,
           sla: timedelta | None) -> SlaCheck:
    elapsed = None if end is None else end - start
    met = None if sla is None or elapsed is None else elapsed <= sla
    return SlaCheck(what=what, elapsed=elapsed, sla=sla, met=met)


def sla_checks(inp: PostmortemInput) -> tuple[SlaCheck, SlaCheck]:
    """Acknowledge and resolve times against the SLAs, measured from detection."""
    start = inp.detected_at or inp.started_at
    acked = inp.acknowledged_at or inp.resolved_at
    return (_check("acknowledged", start, acked, inp.ack_sla),
            _check("resolved", start, inp.resolved_at, inp.resolve_sla))


# --- layout ---------------------------------------------------------------------------------


def md_cell(value: object) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    text = "" if value is None else str(value)
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # Markdown, not HTML; table cells go through md_cell
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters["cell"] = md_cell
_ENV.filters["utc"] = format_utc
_ENV.filters["span"] = format_span


def _went_well_and_wrong(inp: PostmortemInput, ack: SlaCheck,
                         res: SlaCheck) -> tuple[list[str], list[str]]:
    well: list[str] = []
    wrong: list[str] = []
    if inp.detected_at is not None:
        detect = format_span(inp.detected_at - inp.started_at)
        well.append(f"Detected {detect} after the impact started.")
    for check in (ack, res):
        line = check.sentence[0].upper() + check.sentence[1:] + "."
        (wrong if check.met is False or check.elapsed is None else well).append(line)
    escalations = sum(1 for e in inp.timeline if e.kind in ("escalated", "escalation"))
    if escalations:
        wrong.append(f"Escalated {escalations} time(s) before someone acknowledged.")
    return well, wrong


def render_postmortem(inp: PostmortemInput) -> str:
    """The Markdown draft."""
    ack, res = sla_checks(inp)
    well, wrong = _went_well_and_wrong(inp, ack, res)
    identified = [u for u in inp.updates if u.status == "identified"]
    mitigations = [u for u in inp.updates if u.status in ("monitoring", "resolved")]
    description = inp.severity_description or SeverityPolicies().for_severity(
        inp.severity).description
    return _ENV.get_template(TEMPLATE_NAME).render(
        i=inp,
        severity_description=description,
        duration=None if inp.resolved_at is None else inp.resolved_at - inp.started_at,
        detection=None if inp.detected_at is None else inp.detected_at - inp.started_at,
        ack=ack,
        res=res,
        timeline=sorted(inp.timeline, key=lambda e: e.at),
        updates=sorted(inp.updates, key=lambda u: u.at),
        identified=identified,
        mitigations=mitigations,
        went_well=well,
        went_wrong=wrong,
        due=None if inp.resolved_at is None else inp.resolved_at + POSTMORTEM_DUE,
        to_be_filled=TO_BE_FILLED,
    )


def render_public_postmortem(inp: PostmortemInput) -> str:
    """The post-mortem as the public status page shows it: what happened, for how long, why,
    how it was fixed, and what is done so it does not happen again. No people, alerts,
    timeline or incident id (the full draft is for the incident channel)."""
    lines = [f"# {inp.title}", ""]
    if inp.resolved_at is not None:
        lines.append(f"**Impact:** from {format_utc(inp.started_at)} to "
                     f"{format_utc(inp.resolved_at)} "
                     f"({format_span(inp.resolved_at - inp.started_at)}).")
    affected = inp.users_affected or inp.impact
    if affected:
        lines.append(f"**Who was affected:** {affected}")
    fixed = inp.mitigation or next((u.message for u in reversed(inp.updates)
                                    if u.status in ("monitoring", "resolved") and u.message),
                                   None)
    lines += ["", f"**What happened:** {inp.root_cause or TO_BE_FILLED}",
              f"**How we fixed it:** {fixed or TO_BE_FILLED}"]
    if inp.action_items:
        lines += ["", "**What we are doing so it does not happen again:**"]
        lines += [f"- {i.action}" + (" (done)" if i.status == "done" else "")
                  for i in inp.action_items]
    return "\n".join(lines) + "\n"
