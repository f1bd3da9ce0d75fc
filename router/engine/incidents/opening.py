"""Opening, reopening and (re)starting an incident: SLAs, status page, the first page. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from router.engine.incidents.formatting import (
    ROUTER,
    K,
    cfg,
    channel_name,
    group_alerts,
    list_of,
    names,
    note,
    notes,
    public,
)
from router.engine.incidents.timeline import TK, entry, log, with_details, with_view
from router.engine.instant import Instant, iso, to_ts, utc
from router.engine.state import EngineContext, GroupState, IncidentState
from router.escalation import EscalationPolicy, escalation_step
from router.incidents import Incident, IncidentStatus
from router.model import Notification, Severity

Effects = tuple[IncidentState, list[Notification]]


def new_incident(*, incident_id: str, group_key: str, title: str, severity: Severity,
                 impact: str, service: str | None, team: str | None, commander: str | None,
                 dedup_key: str, receivers: Iterable[str], started_at: datetime,
                 opened_at: datetime, actor: str, how: str, now: Instant) -> IncidentState:
    rc = names(receivers)
    at = utc(opened_at)
    opened = entry(at, TK.OPENED, actor, f"{how}: {title} ({severity.value})", now)
    view = Incident.build(
        id=incident_id, group_key=group_key, title=title, severity=severity,
        commander=commander, channel=channel_name(incident_id, title), impact=impact,
        service=service, team=team, opened_at=at, timeline=(opened,),
        details={"dedup_key": dedup_key, "receivers": rc,
                 "started_at": iso(min(utc(started_at), at))},
    )
    return IncidentState.build(view=view, dedup_key=dedup_key, receivers=tuple(rc))


def can_reopen(inc: IncidentState, now: Instant, ctx: EngineContext) -> bool:
    """A resolved incident opened by alerts, resolved within the reopen window of `now`."""
    window = cfg(ctx).reopen_window.total_seconds()
    resolved = inc.view.resolved_at
    return (resolved is not None and not inc.declared and window > 0
            and now.ts - to_ts(resolved) <= window)


def reopen(inc: IncidentState, dedup_key: str, severity: Severity, why: str,
           now: Instant) -> IncidentState:
    """The resolved `inc` open again under the new epoch's dedup key: a new response cycle
    (acknowledgement, escalation from level 1, SLAs from now); breached SLAs stay breached."""
    worst = severity if severity.rank < inc.view.severity.rank else inc.view.severity
    before = inc.view.details.get("reopened")
    count = (before if isinstance(before, int) else 0) + 1
    inc = inc.with_(dedup_key=dedup_key, on_statuspage=False, escalation_policy=None,
                    paged_at=None, page_step=-1, next_page=None, page_keys=(),
                    postmortem_due=None, postmortem_soon=None, forget_at=None)
    inc = with_view(inc, status=IncidentStatus.INVESTIGATING, resolved_at=None,
                    acknowledged_at=None, escalation_level=None, severity=worst)
    inc = with_details(inc, reopened=count, reopened_at=iso(now.dt), dedup_key=dedup_key)
    return log(inc, now.dt, TK.REOPENED, ROUTER, f"reopened: {why}", now)


def arm_slas(inc: IncidentState, ctx: EngineContext) -> IncidentState:
    """Ack and resolve deadlines from the opening (or last reopening), by the incident's current
    severity; an SLA already breached (or met) is not armed again."""
    policy = ctx.policy(inc.view.severity)
    since = inc.view.details.get("reopened_at")
    base = to_ts(datetime.fromisoformat(since)) if isinstance(since, str) else to_ts(
        inc.view.opened_at)
    breached = set(list_of(inc.view.details.get("sla_breaches")))
    ack = resolve = None
    if inc.open:
        if (policy.ack_sla is not None and inc.view.acknowledged_at is None
                and "ack" not in breached):
            ack = base + policy.ack_sla.total_seconds()
        if policy.resolve_sla is not None and "resolve" not in breached:
            resolve = base + policy.resolve_sla.total_seconds()
    return inc.with_(ack_due=ack, resolve_due=resolve)


def policy_for(inc: IncidentState, ctx: EngineContext) -> EscalationPolicy | None:
    oncall = ctx.oncall
    policy = oncall.policy_for_service(inc.view.service) if inc.view.service else None
    if policy is None and inc.view.team:
        policy = oncall.policy_for_team(inc.view.team)
    return policy


def page_key(inc: IncidentState, step: int) -> str:
    """The vendor dedup key of escalation step `step` (0-based) in the incident's paging
    cycle: a cycle restarted after an acknowledgement timed out pages under new keys (the old
    ones are acknowledged at the vendor)."""
    cycle = f":c{inc.cycle}" if inc.cycle else ""
    return f"{inc.dedup_key}{cycle}:page-{step + 1}"


def arm_process(inc: IncidentState, now: Instant, ctx: EngineContext) -> IncidentState:
    """The update cadence and the idle timeout from now, by the incident's severity."""
    policy = ctx.policy(inc.view.severity)
    if not inc.open:
        return inc
    every, idle = policy.update_every, policy.auto_resolve_after
    return inc.with_(update_due=now.ts + every.total_seconds() if every else None,
                     idle_due=now.ts + idle.total_seconds() if idle else None)


def page(s: GroupState, inc: IncidentState, now: Instant, ctx: EngineContext, *,
         key: str, cause: tuple[str, ...], level: int | None, targets: tuple[str, ...],
         actor: str, what: str, extra: dict[str, Any] | None = None) -> Effects:
    receivers = names(cfg(ctx).page_receivers)
    details = {"targets": list(targets), "level": level, "page_key": key, **(extra or {})}
    alerts = group_alerts(s) if receivers else ()
    out = [note(s, inc, K.PAGE, r, key, cause, now, details, alerts) for r in receivers]
    who = ", ".join(targets) or "the service's on-call"
    via = f" via {', '.join(receivers)}" if receivers else ""
    record = {"at": iso(now.dt), "level": level, "targets": list(targets), "key": key,
              "by": actor}
    pages = [*list_of(inc.view.details.get("pages")), record]
    inc = inc.with_(page_keys=(*inc.page_keys, key))
    inc = with_details(inc, pages=pages, page_keys=[p["key"] for p in pages])
    if level is not None:
        inc = with_view(inc, escalation_level=level)
    return log(inc, now.dt, TK.PAGED, actor, f"paged {what}: {who}{via}", now), out


def maybe_page(s: GroupState, inc: IncidentState, now: Instant, ctx: EngineContext) -> Effects:
    """Start paging an incident at or above `page_at` that nobody has been paged for yet."""
    c = cfg(ctx)
    if (not inc.open or inc.view.acknowledged_at is not None or inc.escalation_policy is not None
            or inc.paged_at is not None or not inc.view.severity.at_least(c.page_at)):
        return inc, []
    policy = policy_for(inc, ctx)
    if policy is None:
        if not c.page_receivers:
            return inc, []
        # No escalation policy known here: one page, the vendor's own escalation takes over.
        inc = inc.with_(paged_at=now.ts, page_step=0)
        return page(s, inc, now, ctx, key=page_key(inc, 0), cause=("page", "0"),
                    level=1, targets=(), actor=ROUTER, what="level 1")
    st = escalation_step(policy, ctx.oncall.schedule_map(), now.dt, False, now.dt)
    inc = inc.with_(escalation_policy=policy.name, paged_at=now.ts, page_step=st.step,
                    next_page=to_ts(st.next_at) if st.next_at is not None else None)
    inc = with_details(inc, escalation_policy=policy.name)
    return page(s, inc, now, ctx, key=page_key(inc, st.step),
                cause=("page", str(st.step)), level=st.level + 1, targets=st.targets,
                actor=ROUTER, what=f"level {st.level + 1}",
                extra={"step": st.step + 1, "escalation_policy": policy.name})


def statuspage_details(inc: IncidentState) -> dict[str, Any]:
    ids = list_of(inc.view.details.get("component_ids"))
    return {"component_ids": ids} if ids else {}


def maybe_statuspage(s: GroupState, inc: IncidentState, now: Instant,
                     ctx: EngineContext) -> Effects:
    c = cfg(ctx)
    receiver = c.statuspage_receiver
    if (receiver is None or inc.on_statuspage or not inc.open
            or not inc.view.severity.at_least(c.statuspage_at)):
        return inc, []
    inc = inc.with_(on_statuspage=True)
    component = c.components.get(inc.view.service or "")
    if component:
        inc = with_details(inc, component_ids=[component])
    inc = with_details(inc, statuspage=True)
    out = public(notes(s, inc, K.TRIGGER, [receiver], ("statuspage",), now,
                       statuspage_details(inc)), ctx)
    return log(inc, now.dt, TK.NOTIFIED, ROUTER, "published on the status page", now), out


def start(s: GroupState, inc: IncidentState, now: Instant, ctx: EngineContext) -> Effects:
    """What a newly opened (or reopened) or re-classified incident drives: SLAs, the status
    page, the first page."""
    inc = arm_process(arm_slas(inc, ctx), now, ctx)
    inc, published = maybe_statuspage(s, inc, now, ctx)
    inc, pages = maybe_page(s, inc, now, ctx)
    return inc, published + pages


def set_severity(s: GroupState, inc: IncidentState, severity: Severity, now: Instant,
                 ctx: EngineContext, actor: str, why: str) -> Effects:
    if severity is inc.view.severity:
        return inc, []
    old = inc.view.severity
    inc = with_view(inc, severity=severity)
    inc = log(inc, now.dt, TK.SEVERITY_CHANGE, actor,
              f"severity {old.value} -> {severity.value} ({why})", now)
    return start(s, inc, now, ctx)
