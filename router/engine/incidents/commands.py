"""Commands on incidents (declare, ack, update, resolve, page, post-mortem done). Pure.

A command acts on the incident it names, or the group's open one. Commands on a resolved
incident change nothing and notify nobody (a second resolve is "already resolved"). A person
resolving an incident whose alerts still fire also ends the group's notification epoch: those
alerts are over for the receivers, and only a new firing (which reopens the incident within the
reopen window) pages again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from router.engine.ids import IncidentIds
from router.engine.incidents import actions, channel, inhibit
from router.engine.incidents.alerts import replace_incident
from router.engine.incidents.closing import close, forget_at
from router.engine.incidents.formatting import (
    ROUTER,
    K,
    cfg,
    list_of,
    names,
    notes,
    page_key_notes,
    public,
)
from router.engine.incidents.opening import (
    Effects,
    page,
    set_severity,
    start,
    statuspage_details,
)
from router.engine.incidents.opening import new_incident as _new_incident
from router.engine.incidents.timeline import TK, log, with_details, with_view
from router.engine.instant import Instant, iso, to_ts, utc
from router.engine.state import EngineContext, GroupState, IncidentState
from router.escalation import targets_at_level
from router.incidents import Command, IncidentStatus
from router.model import CommandEvent, Notification, Severity, Status, stable_id

# The same update/page command from the same actor within this many seconds is a double click.
DOUBLE_CLICK_SECONDS = 60.0
_OPEN_STATUSES = {s.value for s in IncidentStatus} - {IncidentStatus.RESOLVED.value}
# Update fields kept in the incident's details (the post-mortem draft reads them).
_DETAIL_FIELDS = {"comms_lead": "communications lead", "users_affected": "users affected",
                  "revenue_impact": "revenue impact", "slo_impact": "SLO impact"}

Result = tuple[GroupState | None, list[Notification], IncidentIds]


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
        return next((x for x in state.incidents if x.view.id == event.incident_id), None)
    return state.incident


def apply_command(state: GroupState | None, event: CommandEvent, now: Instant,
                  ctx: EngineContext, ids: IncidentIds) -> Result:
    target = command_target(state, event, ctx)
    if target is None:
        return state, [], ids
    if target is True:
        return _declare(state, event, now, ctx, ids)
    assert state is not None and isinstance(target, IncidentState)
    inc = target
    command = event.command
    if command == inhibit.INHIBITED:  # an alert kept quiet by this incident (no person acted)
        return replace_incident(state, inhibit.note(inc, event, now)), [], ids
    at = utc(event.at)
    if command in (Command.UPDATE.value, Command.PAGE.value):
        fingerprint = stable_id(command, event.actor,
                                json.dumps(event.args, sort_keys=True, default=str))
        if (inc.last_command == fingerprint and inc.last_command_at is not None
                and abs(to_ts(at) - inc.last_command_at) < DOUBLE_CLICK_SECONDS):
            return state, [], ids
        inc = inc.with_(last_command=fingerprint, last_command_at=to_ts(at))
    if command == Command.UPDATE.value and str(event.args.get("status", "")).lower() == (
            IncidentStatus.RESOLVED.value):
        command = Command.RESOLVE.value
    if command == Command.RESOLVE.value:
        new_state, out = _resolve(state, inc, event, at, now, ctx)
        return new_state, out, ids
    handler = _HANDLERS.get(command)
    if handler is None:
        return state, [], ids
    new, out = handler(state, inc, event, at, now, ctx)
    if new is target:
        return state, [], ids
    if out:
        new = new.with_(rounds=new.rounds + 1)
    idle = ctx.policy(new.view.severity).auto_resolve_after
    if new.open and idle is not None:  # a person acted: not idle
        new = new.with_(idle_due=now.ts + idle.total_seconds())
    return replace_incident(state, new), out, ids


def _declare(state: GroupState | None, event: CommandEvent, now: Instant, ctx: EngineContext,
             ids: IncidentIds) -> Result:
    key = event.group_key or ""
    if not key or (state is not None and state.incident is not None):
        return state, [], ids  # a second click on the same declare: already open
    args = event.args
    severity = _severity(args.get("severity")) or cfg(ctx).open_at
    title = str(args.get("title") or "Declared incident")[:200]
    receivers = [str(r) for r in list_of(args.get("receivers"))] or list(
        ctx.policy(severity).receivers) or list(ctx.default_receivers)
    s = state if state is not None else GroupState(key=key)
    at = utc(event.at)
    incident_id, ids = ids.allocate(now.dt)
    service = _opt(args.get("service"))
    owner = ctx.oncall.services.get(service) if service else None
    inc = _new_incident(
        incident_id=incident_id, group_key=key, title=title, severity=severity,
        impact=str(args.get("impact") or ""), service=service,
        team=_opt(args.get("team")) or (owner.team if owner is not None else None),
        commander=_opt(args.get("commander")), dedup_key=stable_id(key, incident_id),
        receivers=receivers, started_at=at, opened_at=at, actor=event.actor, how="declared",
        now=now)
    out = notes(s, inc, K.TRIGGER, inc.receivers, ("declare",), now, {"actor": event.actor})
    if out:
        inc = log(inc, now.dt, TK.NOTIFIED, ROUTER,
                  f"trigger sent to {', '.join(names(inc.receivers))}", now)
    inc, more = start(s, inc, now, ctx)
    return replace_incident(s, inc), out + more, ids


def _opt(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _severity(value: object) -> Severity | None:
    if isinstance(value, Severity):
        return value
    try:
        return Severity(str(value).upper())
    except ValueError:
        return None


def _resolve(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime, now: Instant,
             ctx: EngineContext) -> tuple[GroupState, list[Notification]]:
    if not inc.open:
        return s, []
    message = str(ev.args.get("message") or "").strip()
    inc, out, _ = close(s, inc, at, now, ctx, actor=ev.actor,
                        text=f"resolved by {ev.actor}" + (f": {message}" if message else ""),
                        message=message, cause=("cmd", str(inc.rounds)))
    inc = inc.with_(rounds=inc.rounds + 1)
    s = replace_incident(s, inc)
    if inc.view.id == (s.incidents[-1].view.id if s.incidents else None):
        s = _end_epoch(s)
    return s, out


def _end_epoch(s: GroupState) -> GroupState:
    """The group's notified epoch ends with its incident: no update, repeat or resolution of
    it follows (its receivers just heard the resolution); a new firing starts a new epoch."""
    if s.notified_status is not Status.FIRING:
        return s
    alerts = {k: st.with_(notified=False) for k, st in s.alerts.items() if st.notified}
    return s.with_(notified_status=Status.RESOLVED, wait_until=None, update_at=None,
                   repeat_at=None, alerts={**s.alerts, **alerts} if alerts else s.alerts)


Handler = Callable[
    [GroupState, IncidentState, CommandEvent, datetime, Instant, EngineContext], Effects,
]


def _ack(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime, now: Instant,
         ctx: EngineContext) -> Effects:
    if not inc.open or inc.view.acknowledged_at is not None:
        return inc, []
    timeout = ctx.policy(inc.view.severity).ack_timeout
    inc = inc.with_(next_page=None, ack_due=None,
                    ack_expires=to_ts(at) + timeout.total_seconds() if timeout else None)
    inc = with_view(inc, acknowledged_at=at, escalation_level=None)
    inc = with_details(inc, acknowledged_by=ev.actor)
    inc = log(inc, at, TK.ACKNOWLEDGED, ev.actor, f"acknowledged by {ev.actor}", now)
    cause = ("cmd", str(inc.rounds))
    details = {"actor": ev.actor}
    out = notes(s, inc, K.ACKNOWLEDGE, inc.receivers, cause, now, details)
    out += page_key_notes(s, inc, K.ACKNOWLEDGE, cause, now, ctx, details)
    return inc, out


def _update(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime, now: Instant,
            ctx: EngineContext) -> Effects:
    args = ev.args
    begin = inc
    message = str(args.get("message") or "").strip()
    changes: list[str] = []
    more: list[Notification] = []
    status = str(args.get("status") or "").lower()
    if inc.open and status in _OPEN_STATUSES and status != inc.view.status.value:
        inc = with_view(inc, status=IncidentStatus(status))
        changes.append(f"status {status}")
    for name in ("root_cause", "mitigation", "commander", "impact"):
        value = args.get(name)
        if value not in (None, "") and str(value) != getattr(inc.view, name):
            inc = with_view(inc, **{name: str(value)})
            changes.append(f"{name.replace('_', ' ')}: {value}")
    for field, what in _DETAIL_FIELDS.items():
        value = args.get(field)
        if value not in (None, "") and str(value) != inc.view.details.get(field):
            inc = with_details(inc, **{field: str(value)})
            changes.append(f"{what}: {value}")
    eta = args.get("eta")
    if eta not in (None, "") and str(eta) != inc.view.details.get("eta"):
        inc = with_details(inc, eta=str(eta))
        changes.append(f"ETA {eta}")
    severity = _severity(args.get("severity")) if args.get("severity") else None
    if inc.open and severity is not None and severity is not inc.view.severity:
        inc, more = set_severity(s, inc, severity, now, ctx, ev.actor, "update")
    if not changes and not message and inc == begin:
        return begin, []
    every = ctx.policy(inc.view.severity).update_every
    if inc.open and every is not None and (message or status):  # the update that was due
        inc = inc.with_(update_due=now.ts + every.total_seconds())
    text = "; ".join([*changes, *([message] if message else [])]) or "updated"
    inc = log(inc, at, TK.STATUS_UPDATE, ev.actor, text, now)
    # "message" is only what a person wrote (the public status page shows it); "summary" also
    # carries root cause and mitigation notes, for the post-mortem.
    update = {"at": iso(at), "status": inc.view.status.value, "message": message or "",
              "summary": text, "by": ev.actor}
    inc = with_details(inc, updates=[*list_of(inc.view.details.get("updates")), update])
    if not inc.open:
        return inc, more  # notes for the post-mortem after resolution: no broadcast
    receivers = set(inc.receivers)
    c = cfg(ctx)
    if inc.on_statuspage and c.statuspage_receiver:
        receivers.add(c.statuspage_receiver)
    details = {"actor": ev.actor, "note": message, **statuspage_details(inc)}
    if message:
        details["message"] = message
    out = public(notes(s, inc, K.UPDATE, receivers, ("cmd", str(inc.rounds)), now, details),
                 ctx)
    return inc, more + out


def _page_command(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime,
                  now: Instant, ctx: EngineContext) -> Effects:
    target = str(ev.args.get("target") or "").lstrip("@").strip()
    if not inc.open or not target:
        return inc, []
    kind = str(ev.args.get("target_kind") or "user")
    targets: tuple[str, ...] = (target,)
    if kind == "team":
        policy = ctx.oncall.policy_for_team(target)
        if policy is not None:
            targets = targets_at_level(policy, ctx.oncall.schedule_map(), 0, now.dt)
    what = f"team {target}" if kind == "team" else f"user {target}"
    return page(s, inc, now, ctx, key=f"{inc.dedup_key}:manual-{inc.rounds + 1}",
                cause=("cmd", str(inc.rounds)), level=None, targets=targets, actor=ev.actor,
                what=what, extra={"target": target, "target_kind": kind, "actor": ev.actor})


def _postmortem_done(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime,
                     now: Instant, ctx: EngineContext) -> Effects:
    if inc.view.postmortem_done:
        return inc, []
    url = _opt(ev.args.get("url"))
    inc = with_view(inc, postmortem_done=True)
    if url:
        inc = with_details(inc, postmortem_url=url)
    inc = inc.with_(postmortem_due=None, postmortem_soon=None,
                    forget_at=None if inc.open else forget_at(inc, now, ctx))
    return log(inc, at, TK.POSTMORTEM, ev.actor,
               "post-mortem done" + (f": {url}" if url else ""), now), []


_HANDLERS: dict[str, Handler] = {
    Command.ACTION.value: actions.add,  # open or resolved: post-mortems come after
    Command.ACTION_UPDATE.value: actions.update,
    Command.ACK.value: _ack,
    Command.UPDATE.value: _update,
    Command.PAGE.value: _page_command,
    Command.POSTMORTEM_DONE.value: _postmortem_done,
    Command.NOTE.value: channel.add_note,  # open or resolved, like action items
    Command.POSTMORTEM_PUBLISH.value: channel.publish,
}
