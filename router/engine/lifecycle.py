"""Incidents inside the engine: opening, commands, paging and escalation, SLAs. Pure, no I/O.

An incident belongs to one group key (single writer): opened when the group first notifies at
or above `incidents.open_at` (once per alert epoch), or by a `declare` command (hand-declared
incidents use their own `manual:<uuid>` key). Its state is `IncidentState` inside the
`GroupState`; `IncidentState.v` is the `router.incidents.Incident` view the API reads.

Timers are absolute deadlines in state (escalation step, ack and resolve SLAs, post-mortem
reminder), so a replay or a restart fires each exactly once. Notification ids come from the
incident id plus what caused them (escalation step, SLA name, command round), so a replayed
batch emits the same ids and the outbox / vendor dedup keys absorb it.

Who hears what (`rc` = the incident's receivers: the group's, or the severity policy's or the
default receivers for a declared incident; `page` = `incidents.page_receivers`):

| event               | kind        | receivers (dedup key)                                     |
|---------------------|-------------|-----------------------------------------------------------|
| declare             | TRIGGER     | rc (incident key)                                         |
| page step / command | PAGE        | page (`<key>:page-<step>` / `<key>:manual-<n>`)           |
| escalation          | ESCALATE    | rc + sla_receivers, minus page receivers                  |
| ack                 | ACKNOWLEDGE | rc (key) + page (every page key)                          |
| update              | UPDATE      | rc + status page                                          |
| resolve             | RESOLVE     | rc + status page (key) + page (every page key)            |
| SLA breach          | SLA_BREACH  | rc + sla_receivers                                        |
| post-mortem due     | REMINDER    | rc + sla_receivers                                        |
| status page         | TRIGGER/UPDATE/RESOLVE to `statuspage_receiver`, details.component_ids |
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from router.config import IncidentsConfig
from router.engine.state import (
    EngineContext,
    GroupState,
    IncidentIds,
    IncidentState,
    from_ts,
    to_ts,
)
from router.escalation import EscalationPolicy, escalation_step, targets_at_level
from router.incidents import Command, Incident, IncidentStatus, TimelineEntry, TimelineKind
from router.model import (
    Alert,
    CommandEvent,
    Notification,
    NotificationKind,
    Severity,
    Status,
    stable_id,
)

K = NotificationKind
TK = TimelineKind
ROUTER = "router"
# Alert and notification entries stop being recorded past this many (a flapping group must not
# grow the state without bound); human and escalation events are always recorded.
MAX_TIMELINE = 500
# The same update/page command from the same actor within this many seconds is a double click.
DOUBLE_CLICK_SECONDS = 60.0
MAX_NOTE_ALERTS = 50
_OPEN_STATUSES = {s.value for s in IncidentStatus} - {IncidentStatus.RESOLVED.value}


# --- small helpers ------------------------------------------------------------------------------


def iso(value: datetime) -> str:
    return utc(value).isoformat()


def utc(value: datetime) -> datetime:
    tz = value.tzinfo
    if tz is UTC:
        return value  # the common case, without a copy
    if tz is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@functools.lru_cache(maxsize=4096)
def slug(text: str, limit: int = 40) -> str:
    """Slack-channel-safe slug: lower case, `a-z0-9-`, at most `limit` characters."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].strip("-") or "incident"


def channel_name(incident_id: str, title: str) -> str:
    """`#inc-YYYYMMDD-<slug of title>` (the day of the id)."""
    day = incident_id.split("-")[1] if incident_id.count("-") >= 2 else ""
    return f"#inc-{day}-{slug(title)}"


def _hours(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    return f"{hours:g} hours" if hours >= 1 else _span(d)


def _span(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    if minutes and minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min" if minutes else f"{int(d.total_seconds())} s"


def _view(inc: IncidentState, **update: Any) -> IncidentState:
    return inc.with_(v=inc.v.with_(**update))


def _details(inc: IncidentState, **items: Any) -> IncidentState:
    return _view(inc, details={**inc.v.details, **items})


def _log(inc: IncidentState, at: datetime, kind: TimelineKind, actor: str,
         text: str) -> IncidentState:
    timeline = inc.v.timeline
    noisy = kind in (TK.ALERT_FIRED, TK.ALERT_RESOLVED, TK.NOTIFIED)
    if noisy and len(timeline) >= MAX_TIMELINE:
        return inc
    entry = TimelineEntry.build(at=utc(at), kind=kind, actor=actor, text=text)
    return _view(inc, timeline=(*timeline, entry))


def _cfg(ctx: EngineContext) -> IncidentsConfig:
    assert ctx.incidents is not None
    return ctx.incidents


def _sorted(names: Iterable[str]) -> list[str]:
    return sorted(set(names))


def _group_alerts(s: GroupState) -> tuple[Alert, ...]:
    states = sorted(s.a.values(), key=lambda st: (not st.firing, st.a.starts_at, st.a.key))
    return tuple(st.a for st in states[:MAX_NOTE_ALERTS])


def _base_details(inc: IncidentState) -> dict[str, Any]:
    v = inc.v
    d: dict[str, Any] = {
        "incident_id": v.id,
        "channel": v.channel,
        "status": v.status.value,
        "impact": v.impact,
        "started_at": v.details.get("started_at") or iso(v.opened_at),
    }
    for name in ("commander", "service", "team", "root_cause", "mitigation"):
        value = getattr(v, name)
        if value:
            d[name] = value
    eta = v.details.get("eta")
    if eta:
        d["eta"] = eta
    return d


def _note(s: GroupState, inc: IncidentState, kind: NotificationKind, receiver: str,
          dedup_key: str, cause: tuple[str, ...], now_dt: datetime,
          details: dict[str, Any] | None = None,
          alerts: tuple[Alert, ...] | None = None) -> Notification:
    return Notification.build(
        id=stable_id(inc.v.id, *cause, kind.value, dedup_key, receiver),
        receiver=receiver,
        kind=kind,
        group_key=s.k,
        dedup_key=dedup_key,
        severity=inc.v.severity,
        title=inc.v.title,
        alerts=_group_alerts(s) if alerts is None else alerts,
        incident_id=inc.v.id,
        created_at=now_dt,
        details={**_base_details(inc), **(details or {})},
    )


def _notes(s: GroupState, inc: IncidentState, kind: NotificationKind, receivers: Iterable[str],
           cause: tuple[str, ...], now_dt: datetime,
           details: dict[str, Any] | None = None) -> list[Notification]:
    names = _sorted(receivers)
    alerts = _group_alerts(s) if names else ()
    return [_note(s, inc, kind, r, inc.dk, cause, now_dt, details, alerts) for r in names]


_INTERNAL = ("channel", "commander", "actor")


def _public(notes: list[Notification], ctx: EngineContext) -> list[Notification]:
    """What goes to the public status page carries no internal names (channel, people)."""
    receiver = _cfg(ctx).statuspage_receiver
    return [
        n.with_(details={k: v for k, v in n.details.items() if k not in _INTERNAL})
        if n.receiver == receiver else n
        for n in notes
    ]


def _page_key_notes(s: GroupState, inc: IncidentState, kind: NotificationKind,
                    cause: tuple[str, ...], now_dt: datetime, ctx: EngineContext,
                    details: dict[str, Any] | None = None) -> list[Notification]:
    """Acknowledge / resolve every page sent (each has its own vendor dedup key)."""
    names = _sorted(_cfg(ctx).page_receivers)
    alerts = _group_alerts(s) if names and inc.pk else ()
    return [
        _note(s, inc, kind, r, key, cause, now_dt, details, alerts)
        for key in inc.pk for r in names
    ]


# --- opening ------------------------------------------------------------------------------------


def _arm_slas(inc: IncidentState, ctx: EngineContext) -> IncidentState:
    """Ack and resolve deadlines from the opening, by the incident's current severity; an SLA
    already breached (or met) is not armed again."""
    policy = ctx.policy(inc.v.severity)
    opened = to_ts(inc.v.opened_at)
    breached = set(_list(inc.v.details.get("sla_breaches")))
    ka = kr = None
    if policy.ack_sla is not None and inc.v.acknowledged_at is None and "ack" not in breached \
            and inc.open:
        ka = opened + policy.ack_sla.total_seconds()
    if policy.resolve_sla is not None and inc.open and "resolve" not in breached:
        kr = opened + policy.resolve_sla.total_seconds()
    return inc.with_(ka=ka, kr=kr)


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _policy_for(inc: IncidentState, ctx: EngineContext) -> EscalationPolicy | None:
    oncall = ctx.oncall
    policy = oncall.policy_for_service(inc.v.service) if inc.v.service else None
    if policy is None and inc.v.team:
        policy = oncall.policy_for_team(inc.v.team)
    return policy


def _page(s: GroupState, inc: IncidentState, now_dt: datetime, ctx: EngineContext, *,
          key: str, cause: tuple[str, ...], level: int | None, targets: tuple[str, ...],
          actor: str, what: str, extra: dict[str, Any] | None = None,
          ) -> tuple[IncidentState, list[Notification]]:
    receivers = _sorted(_cfg(ctx).page_receivers)
    details = {"targets": list(targets), "level": level, "page_key": key, **(extra or {})}
    alerts = _group_alerts(s) if receivers else ()
    notes = [_note(s, inc, K.PAGE, r, key, cause, now_dt, details, alerts) for r in receivers]
    who = ", ".join(targets) or "the service's on-call"
    via = f" via {', '.join(receivers)}" if receivers else ""
    page = {"at": iso(now_dt), "level": level, "targets": list(targets), "key": key,
            "by": actor}
    pages = [*_list(inc.v.details.get("pages")), page]
    inc = inc.with_(pk=(*inc.pk, key))
    inc = _details(inc, pages=pages, page_keys=list(inc.pk))
    if level is not None:
        inc = _view(inc, escalation_level=level)
    return _log(inc, now_dt, TK.PAGED, actor, f"paged {what}: {who}{via}"), notes


def _maybe_page(s: GroupState, inc: IncidentState, now: float, now_dt: datetime,
                ctx: EngineContext) -> tuple[IncidentState, list[Notification]]:
    """Start paging an incident at or above `page_at` that nobody has been paged for yet."""
    cfg = _cfg(ctx)
    if (not inc.open or inc.v.acknowledged_at is not None or inc.ep is not None
            or inc.pa is not None or not inc.v.severity.at_least(cfg.page_at)):
        return inc, []
    policy = _policy_for(inc, ctx)
    if policy is None:
        if not cfg.page_receivers:
            return inc, []
        # No escalation policy known here: one page, the vendor's own escalation takes over.
        inc = inc.with_(pa=now, ps=0)
        return _page(s, inc, now_dt, ctx, key=f"{inc.dk}:page-1", cause=("page", "0"),
                     level=1, targets=(), actor=ROUTER, what="level 1")
    st = escalation_step(policy, ctx.oncall.schedule_map(), now_dt, False, now_dt)
    inc = inc.with_(
        ep=policy.name, pa=now, ps=st.step,
        pn=to_ts(st.next_at) if st.next_at is not None else None,
    )
    inc = _details(inc, escalation_policy=policy.name)
    return _page(s, inc, now_dt, ctx, key=f"{inc.dk}:page-{st.step + 1}",
                 cause=("page", str(st.step)), level=st.level + 1, targets=st.targets,
                 actor=ROUTER, what=f"level {st.level + 1}",
                 extra={"step": st.step + 1, "escalation_policy": policy.name})


def _maybe_statuspage(s: GroupState, inc: IncidentState, now_dt: datetime,
                      ctx: EngineContext) -> tuple[IncidentState, list[Notification]]:
    cfg = _cfg(ctx)
    receiver = cfg.statuspage_receiver
    if receiver is None or inc.sp or not inc.open or not inc.v.severity.at_least(
            cfg.statuspage_at):
        return inc, []
    inc = inc.with_(sp=True)
    component = cfg.components.get(inc.v.service or "")
    if component:
        inc = _details(inc, component_ids=[component])
    inc = _details(inc, statuspage=True)
    notes = _public(_notes(s, inc, K.TRIGGER, [receiver], ("statuspage",), now_dt,
                           _statuspage_details(inc)), ctx)
    return _log(inc, now_dt, TK.NOTIFIED, ROUTER, "published on the status page"), notes


def _statuspage_details(inc: IncidentState) -> dict[str, Any]:
    ids = _list(inc.v.details.get("component_ids"))
    return {"component_ids": ids} if ids else {}


def _start(s: GroupState, inc: IncidentState, now: float, now_dt: datetime,
           ctx: EngineContext) -> tuple[IncidentState, list[Notification]]:
    inc = _arm_slas(inc, ctx)
    inc, notes = _maybe_statuspage(s, inc, now_dt, ctx)
    inc, pages = _maybe_page(s, inc, now, now_dt, ctx)
    return inc, notes + pages


def _new_incident(*, incident_id: str, group_key: str, title: str, severity: Severity,
                  impact: str, service: str | None, team: str | None, commander: str | None,
                  opened_at: datetime, dedup_key: str, receivers: Iterable[str],
                  started_at: datetime, actor: str, how: str) -> IncidentState:
    rc = _sorted(receivers)
    at = utc(opened_at)
    opened = TimelineEntry.build(at=at, kind=TK.OPENED, actor=actor,
                                 text=f"{how}: {title} ({severity.value})")
    view = Incident.build(
        id=incident_id, group_key=group_key, title=title, severity=severity,
        commander=commander, channel=channel_name(incident_id, title), impact=impact,
        service=service, team=team, opened_at=at, timeline=(opened,),
        details={"dedup_key": dedup_key, "receivers": rc,
                 "started_at": iso(min(utc(started_at), at))},
    )
    return IncidentState.build(v=view, dk=dedup_key, rc=tuple(rc))


# --- alerts of the group ------------------------------------------------------------------------


def _impact_of(alerts: Iterable[Alert]) -> str:
    for key in ("impact", "summary", "description"):
        for a in alerts:
            if a.annotations.get(key):
                return a.annotations[key]
    return ""


def _observe(before: GroupState | None, s: GroupState, inc: IncidentState, now_dt: datetime,
             opened: bool, notes: list[Notification], kind: NotificationKind) -> IncidentState:
    """Record a notification round of the group on the incident in one copy (hot path: an
    alert storm opens many incidents): alerts notified firing / resolved, who was told."""
    prev = before.a if before is not None else {}
    keys = list(inc.v.alerts)
    raw = inc.v.details.get("alert_info")
    info: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    entries: list[TimelineEntry] = []
    for key, st in sorted(s.a.items(), key=lambda kv: (kv[1].t, kv[0])):
        old = prev.get(key)
        was = old.n if old is not None else False
        a = st.a
        if st.n and (opened or not was):
            summary = a.annotations.get("summary")
            entries.append(TimelineEntry.build(
                at=utc(a.starts_at), kind=TK.ALERT_FIRED, actor=a.source,
                text=f"{a.name} firing" + (f": {summary}" if summary else "")))
        elif was and not st.n and not st.firing:
            entries.append(TimelineEntry.build(
                at=utc(a.ends_at or now_dt), kind=TK.ALERT_RESOLVED, actor=a.source,
                text=f"{a.name} resolved"))
        else:
            continue
        if key not in keys:
            keys.append(key)
        info[key] = {"name": a.name, "service": a.service, "started_at": iso(a.starts_at),
                     "ended_at": iso(a.ends_at) if a.ends_at and not st.firing else None}
    if notes and kind is not K.REPEAT:  # reminders are not news
        receivers = ", ".join(_sorted(n.receiver for n in notes))
        entries.append(TimelineEntry.build(at=utc(now_dt), kind=TK.NOTIFIED, actor=ROUTER,
                                           text=f"{kind.value} sent to {receivers}"))
    room = max(0, MAX_TIMELINE - len(inc.v.timeline))
    rc = tuple(_sorted((*inc.rc, *s.rc)))
    view = inc.v.with_(
        alerts=tuple(keys),
        timeline=(*inc.v.timeline, *entries[:room]),
        details={**inc.v.details, "alert_info": info, "receivers": list(rc)},
    )
    return inc.with_(v=view, rc=rc)


def _tag(n: Notification, inc: IncidentState) -> Notification:
    details = {**n.details, "incident_id": inc.v.id, "channel": inc.v.channel}
    if n.kind is not K.RESOLVE:
        details["status"] = inc.v.status.value
    return n.with_(incident_id=inc.v.id, details=details)


def _replace(s: GroupState, inc: IncidentState, **changes: Any) -> GroupState:
    """`s` with `inc` in place of the incident of its id (or added), plus `changes`."""
    incidents = tuple(inc if x.v.id == inc.v.id else x for x in s.i)
    if not any(x.v.id == inc.v.id for x in s.i):
        incidents = (*incidents, inc)
    return s.with_(i=incidents, **changes)


def after_group(before: GroupState | None, s: GroupState, notes: list[Notification], now: float,
                now_dt: datetime, ctx: EngineContext, ids: IncidentIds, *, timers: bool,
                ) -> tuple[GroupState, list[Notification]]:
    """After the alert state machine's step: open an incident when the group notifies at or
    above `open_at`, record its alerts and notifications, then (on a Tick) fire due timers."""
    cfg = _cfg(ctx)
    inc = s.incident
    out = list(notes)
    # Did the group notify in this step? (It does even with no receiver to tell.)
    prev = (before.e, before.q) if before is not None else (0, 0)
    if s.q > 0 and (s.e, s.q) != prev and s.nv is not None:
        severity = s.nv
        firing = s.ns is Status.FIRING
        kind = notes[0].kind if notes else (K.UPDATE if firing else K.RESOLVE)
        opened = False
        if (inc is None and firing and s.e != s.ie and s.firing
                and severity.at_least(cfg.open_at)):
            alerts = notes[0].alerts if notes else _group_alerts(s)
            first = alerts[0]
            title = first.name + (f" ({first.service})" if first.service else "")
            inc = _new_incident(
                incident_id=ids.allocate(now_dt), group_key=s.k, title=title,
                severity=severity, impact=_impact_of(alerts), service=first.service,
                team=first.team or _team_of(first.service, ctx), commander=None,
                opened_at=now_dt, dedup_key=notes[0].dedup_key if notes else s.dedup_key,
                receivers=s.rc, started_at=min(a.starts_at for a in alerts), actor=ROUTER,
                how="opened by alerts")
            opened = True
        if inc is not None:
            inc = _observe(before, s, inc, now_dt, opened, notes, kind)
            out = [_tag(n, inc) for n in notes]
            more: list[Notification] = []
            if opened:
                inc, more = _start(s, inc, now, now_dt, ctx)
            elif firing and severity.rank < inc.v.severity.rank:
                inc, more = _set_severity(s, inc, severity, now, now_dt, ctx, ROUTER, "alerts")
            out += more
            s = _replace(s, inc, ie=s.e) if opened else _replace(s, inc)
    if timers:
        for x in list(s.i):
            new, emitted = _fire_timers(s, x, now, now_dt, ctx)
            out += emitted
            if new is None:
                s = s.with_(i=tuple(y for y in s.i if y.v.id != x.v.id))
            elif new is not x:
                s = _replace(s, new)
    return s, out


def _set_severity(s: GroupState, inc: IncidentState, severity: Severity, now: float,
                  now_dt: datetime, ctx: EngineContext, actor: str,
                  why: str) -> tuple[IncidentState, list[Notification]]:
    if severity is inc.v.severity:
        return inc, []
    old = inc.v.severity
    inc = _view(inc, severity=severity)
    inc = _log(inc, now_dt, TK.SEVERITY_CHANGE, actor,
               f"severity {old.value} -> {severity.value} ({why})")
    inc = _arm_slas(inc, ctx)
    inc, notes = _maybe_statuspage(s, inc, now_dt, ctx)
    inc, pages = _maybe_page(s, inc, now, now_dt, ctx)
    return inc, notes + pages


# --- timers -------------------------------------------------------------------------------------


def _fire_timers(s: GroupState, inc: IncidentState, now: float, now_dt: datetime,
                 ctx: EngineContext) -> tuple[IncidentState | None, list[Notification]]:
    notes: list[Notification] = []
    if inc.pn is not None and inc.pn <= now:
        inc, more = _escalate(s, inc, now, now_dt, ctx)
        notes += more
    if inc.ka is not None and inc.ka <= now:
        inc = inc.with_(ka=None)
        if inc.open and inc.v.acknowledged_at is None:
            inc, more = _breach(s, inc, "ack", now_dt, ctx)
            notes += more
    if inc.kr is not None and inc.kr <= now:
        inc = inc.with_(kr=None)
        if inc.open:
            inc, more = _breach(s, inc, "resolve", now_dt, ctx)
            notes += more
    if inc.pm is not None and inc.pm <= now:
        inc = inc.with_(pm=None,
                                     dx=now + ctx.resolved_retention.total_seconds())
        if not inc.v.postmortem_done:
            cfg = _cfg(ctx)
            text = f"post-mortem not marked done {_span(cfg.postmortem_due)} after resolution"
            inc = _log(inc, now_dt, TK.POSTMORTEM, ROUTER, text)
            notes += _notes(s, inc, K.REMINDER, (*inc.rc, *cfg.sla_receivers), ("reminder",),
                            now_dt, {"note": f"Reminder: the {text}.", "reminder": "postmortem",
                                     "next_update": "none, the incident is resolved"})
    if inc.dx is not None and inc.dx <= now:
        return None, notes
    return inc, notes


def _escalate(s: GroupState, inc: IncidentState, now: float, now_dt: datetime,
              ctx: EngineContext) -> tuple[IncidentState, list[Notification]]:
    policy = ctx.oncall.policy(inc.ep) if inc.ep else None
    if policy is None or inc.pa is None or not inc.open or inc.v.acknowledged_at is not None:
        return inc.with_(pn=None), []
    st = escalation_step(policy, ctx.oncall.schedule_map(), from_ts(inc.pa), False, now_dt)
    nxt = to_ts(st.next_at) if st.next_at is not None else None
    if st.step <= inc.ps:  # already paged (e.g. the policy changed under us)
        return inc.with_(pn=nxt if nxt is not None and nxt > now else None), []
    inc = inc.with_(ps=st.step, pn=nxt)
    level = st.level + 1
    rounds = f", pass {st.repeat_pass + 1}" if st.repeat_pass else ""
    inc = _log(inc, now_dt, TK.ESCALATED, ROUTER,
               f"not acknowledged: escalated to level {level}{rounds} ({policy.name})")
    extra = {"step": st.step + 1, "escalation_policy": policy.name}
    inc, pages = _page(s, inc, now_dt, ctx, key=f"{inc.dk}:page-{st.step + 1}",
                       cause=("page", str(st.step)), level=level, targets=st.targets,
                       actor=ROUTER, what=f"level {level}", extra=extra)
    cfg = _cfg(ctx)
    told = set(inc.rc) | set(cfg.sla_receivers)
    told -= set(cfg.page_receivers)
    who = ", ".join(st.targets) or "on-call"
    notes = _notes(s, inc, K.ESCALATE, told, ("escalate", str(st.step)), now_dt,
                   {"level": level, "targets": list(st.targets),
                    "note": f"Not acknowledged: escalated to level {level} ({who})."})
    return inc, pages + notes


def _breach(s: GroupState, inc: IncidentState, sla: str, now_dt: datetime,
            ctx: EngineContext) -> tuple[IncidentState, list[Notification]]:
    policy = ctx.policy(inc.v.severity)
    limit = policy.ack_sla if sla == "ack" else policy.resolve_sla
    what = "acknowledge" if sla == "ack" else "resolve"
    span = f" ({_span(limit)})" if limit is not None else ""
    text = f"{what} SLA{span} of {inc.v.severity.value} breached"
    breaches = [*_list(inc.v.details.get("sla_breaches")), sla]
    inc = _details(inc, sla_breaches=breaches)
    inc = _log(inc, now_dt, TK.SLA_BREACH, ROUTER, text)
    notes = _notes(s, inc, K.SLA_BREACH, (*inc.rc, *_cfg(ctx).sla_receivers), ("sla", sla),
                   now_dt, {"sla": sla, "note": f"The {text}."})
    return inc, notes


# --- commands -----------------------------------------------------------------------------------


def command_target(state: GroupState | None, event: CommandEvent,
                   ctx: EngineContext) -> IncidentState | bool | None:
    """The incident a command acts on; True for a declare (it creates one); None when the
    command names no incident known here (counted and ignored)."""
    if ctx.incidents is None:
        return None
    if event.command == Command.DECLARE.value:
        return True
    if state is None:
        return None
    if event.incident_id:
        return next((x for x in state.i if x.v.id == event.incident_id), None)
    return state.incident


def apply_command(state: GroupState | None, event: CommandEvent, now: float, now_dt: datetime,
                  ctx: EngineContext, ids: IncidentIds,
                  ) -> tuple[GroupState | None, list[Notification]]:
    target = command_target(state, event, ctx)
    if target is None:
        return state, []
    if target is True:
        return _declare(state, event, now, now_dt, ctx, ids)
    assert state is not None and isinstance(target, IncidentState)
    inc = target
    command = event.command
    at = utc(event.at)
    if command in (Command.UPDATE.value, Command.PAGE.value):
        fingerprint = stable_id(command, event.actor,
                                json.dumps(event.args, sort_keys=True, default=str))
        if (inc.lc == fingerprint and inc.lt is not None
                and abs(to_ts(at) - inc.lt) < DOUBLE_CLICK_SECONDS):
            return state, []
        inc = inc.with_(lc=fingerprint, lt=to_ts(at))
    if command == Command.UPDATE.value and str(event.args.get("status", "")).lower() == (
            IncidentStatus.RESOLVED.value):
        command = Command.RESOLVE.value
    handler = _HANDLERS.get(command)
    if handler is None:
        return state, []
    new, notes = handler(state, inc, event, at, now, now_dt, ctx)
    if new is target:
        return state, []
    if notes:
        new = new.with_(q=new.q + 1)
    return _replace(state, new), notes


def _declare(state: GroupState | None, event: CommandEvent, now: float, now_dt: datetime,
             ctx: EngineContext, ids: IncidentIds) -> tuple[GroupState | None, list[Notification]]:
    key = event.group_key or ""
    if not key or (state is not None and state.incident is not None):
        return state, []  # a second click on the same declare: already open
    args = event.args
    cfg = _cfg(ctx)
    severity = _severity(args.get("severity")) or cfg.open_at
    title = str(args.get("title") or "Declared incident")[:200]
    receivers = [str(r) for r in _list(args.get("receivers"))] or list(
        ctx.policy(severity).receivers) or list(ctx.default_receivers)
    s = state if state is not None else GroupState(k=key)
    at = utc(event.at)
    incident_id = ids.allocate(now_dt)
    inc = _new_incident(
        incident_id=incident_id, group_key=key, title=title, severity=severity,
        impact=str(args.get("impact") or ""), service=_opt(args.get("service")),
        team=_opt(args.get("team")) or _team_of(_opt(args.get("service")), ctx),
        commander=_opt(args.get("commander")), opened_at=at,
        dedup_key=stable_id(key, incident_id), receivers=receivers, started_at=at,
        actor=event.actor, how="declared")
    notes = _notes(s, inc, K.TRIGGER, inc.rc, ("declare",), now_dt, {"actor": event.actor})
    if notes:
        inc = _log(inc, now_dt, TK.NOTIFIED, ROUTER,
                   f"trigger sent to {', '.join(_sorted(inc.rc))}")
    inc, more = _start(s, inc, now, now_dt, ctx)
    return _replace(s, inc), notes + more


def _team_of(service: str | None, ctx: EngineContext) -> str | None:
    owner = ctx.oncall.services.get(service) if service else None
    return owner.team if owner is not None else None


def _opt(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _severity(value: object) -> Severity | None:
    if isinstance(value, Severity):
        return value
    try:
        return Severity(str(value).upper())
    except ValueError:
        return None


Handler = Callable[
    [GroupState, IncidentState, CommandEvent, datetime, float, datetime, EngineContext],
    tuple[IncidentState, list[Notification]],
]


def _ack(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime, now: float,
         now_dt: datetime, ctx: EngineContext) -> tuple[IncidentState, list[Notification]]:
    if not inc.open or inc.v.acknowledged_at is not None:
        return inc, []
    inc = inc.with_(pn=None, ka=None)
    inc = _view(inc, acknowledged_at=at, escalation_level=None)
    inc = _details(inc, acknowledged_by=ev.actor)
    inc = _log(inc, at, TK.ACKNOWLEDGED, ev.actor, f"acknowledged by {ev.actor}")
    cause = ("cmd", str(inc.q))
    details = {"actor": ev.actor}
    notes = _notes(s, inc, K.ACKNOWLEDGE, inc.rc, cause, now_dt, details)
    notes += _page_key_notes(s, inc, K.ACKNOWLEDGE, cause, now_dt, ctx, details)
    return inc, notes


def _update(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime, now: float,
            now_dt: datetime, ctx: EngineContext) -> tuple[IncidentState, list[Notification]]:
    args = ev.args
    start = inc
    message = str(args.get("message") or "").strip()
    changes: list[str] = []
    more: list[Notification] = []
    status = str(args.get("status") or "").lower()
    if inc.open and status in _OPEN_STATUSES and status != inc.v.status.value:
        inc = _view(inc, status=IncidentStatus(status))
        changes.append(f"status {status}")
    for name in ("root_cause", "mitigation", "commander", "impact"):
        value = args.get(name)
        if value not in (None, "") and str(value) != getattr(inc.v, name):
            inc = _view(inc, **{name: str(value)})
            changes.append(f"{name.replace('_', ' ')}: {value}")
    eta = args.get("eta")
    if eta not in (None, "") and str(eta) != inc.v.details.get("eta"):
        inc = _details(inc, eta=str(eta))
        changes.append(f"ETA {eta}")
    severity = _severity(args.get("severity")) if args.get("severity") else None
    if inc.open and severity is not None and severity is not inc.v.severity:
        inc, more = _set_severity(s, inc, severity, now, now_dt, ctx, ev.actor, "update")
    if not changes and not message and inc == start:
        return start, []
    text = "; ".join([*changes, *([message] if message else [])]) or "updated"
    inc = _log(inc, at, TK.STATUS_UPDATE, ev.actor, text)
    # "message" is only what a person wrote (the public status page shows it); "summary" also
    # carries root cause and mitigation notes, for the post-mortem.
    update = {"at": iso(at), "status": inc.v.status.value, "message": message or "",
              "summary": text, "by": ev.actor}
    inc = _details(inc, updates=[*_list(inc.v.details.get("updates")), update])
    if not inc.open:
        return inc, more  # notes for the post-mortem after resolution: no broadcast
    receivers = set(inc.rc)
    if inc.sp and _cfg(ctx).statuspage_receiver:
        receivers.add(_cfg(ctx).statuspage_receiver or "")
    details = {"actor": ev.actor, "note": message, **_statuspage_details(inc)}
    if message:
        details["message"] = message
    notes = _public(_notes(s, inc, K.UPDATE, receivers, ("cmd", str(inc.q)), now_dt, details),
                    ctx)
    return inc, more + notes


def _resolve(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime, now: float,
             now_dt: datetime, ctx: EngineContext) -> tuple[IncidentState, list[Notification]]:
    if not inc.open:
        return inc, []
    cfg = _cfg(ctx)
    message = str(ev.args.get("message") or "").strip()
    pm = None if inc.v.postmortem_done else to_ts(at) + cfg.postmortem_due.total_seconds()
    inc = inc.with_(pn=None, ka=None, kr=None, pm=pm)
    inc = _view(inc, status=IncidentStatus.RESOLVED, resolved_at=at, escalation_level=None)
    if message:
        inc = _details(inc, resolution=message)
    inc = _log(inc, at, TK.RESOLVED, ev.actor,
               f"resolved by {ev.actor}" + (f": {message}" if message else ""))
    due = at + cfg.postmortem_due
    details = {
        "actor": ev.actor,
        "resolved_at": iso(at),
        "resolution": message or None,
        "postmortem": (f"A post-mortem will be shared within {_hours(cfg.postmortem_due)} "
                       f"(by {due:%Y-%m-%d %H:%M} UTC)."),
        "postmortem_due_at": iso(due),
        **_statuspage_details(inc),
    }
    receivers = set(inc.rc)
    if inc.sp and cfg.statuspage_receiver:
        receivers.add(cfg.statuspage_receiver)
    cause = ("cmd", str(inc.q))
    notes = _public(_notes(s, inc, K.RESOLVE, receivers, cause, now_dt, details), ctx)
    notes += _page_key_notes(s, inc, K.RESOLVE, cause, now_dt, ctx, {"actor": ev.actor})
    return inc, notes


def _page_command(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime,
                  now: float, now_dt: datetime,
                  ctx: EngineContext) -> tuple[IncidentState, list[Notification]]:
    target = str(ev.args.get("target") or "").lstrip("@").strip()
    if not inc.open or not target:
        return inc, []
    kind = str(ev.args.get("target_kind") or "user")
    targets: tuple[str, ...] = (target,)
    if kind == "team":
        policy = ctx.oncall.policy_for_team(target)
        if policy is not None:
            targets = targets_at_level(policy, ctx.oncall.schedule_map(), 0, now_dt)
    what = f"team {target}" if kind == "team" else f"user {target}"
    return _page(s, inc, now_dt, ctx, key=f"{inc.dk}:manual-{inc.q + 1}",
                 cause=("cmd", str(inc.q)), level=None, targets=targets, actor=ev.actor,
                 what=what, extra={"target": target, "target_kind": kind, "actor": ev.actor})


def _postmortem_done(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime,
                     now: float, now_dt: datetime,
                     ctx: EngineContext) -> tuple[IncidentState, list[Notification]]:
    if inc.v.postmortem_done:
        return inc, []
    url = _opt(ev.args.get("url"))
    inc = _view(inc, postmortem_done=True)
    if url:
        inc = _details(inc, postmortem_url=url)
    dx = None if inc.open else now + ctx.resolved_retention.total_seconds()
    inc = inc.with_(pm=None, dx=dx)
    return _log(inc, at, TK.POSTMORTEM, ev.actor,
                "post-mortem done" + (f": {url}" if url else "")), []


_HANDLERS: dict[str, Handler] = {
    Command.ACK.value: _ack,
    Command.UPDATE.value: _update,
    Command.RESOLVE.value: _resolve,
    Command.PAGE.value: _page_command,
    Command.POSTMORTEM_DONE.value: _postmortem_done,
}
