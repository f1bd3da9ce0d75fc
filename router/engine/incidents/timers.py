"""An incident's timers: escalation steps, acknowledge and resolve SLAs, the post-mortem
reminder, and forgetting it. Pure; each deadline fires once (it is cleared or moved on)."""

from __future__ import annotations

from datetime import timedelta

from router.engine.incidents import actions
from router.engine.incidents.closing import close, forget_at
from router.engine.incidents.formatting import ROUTER, K, cfg, list_of, notes, span
from router.engine.incidents.opening import Effects, maybe_page, page, page_key
from router.engine.incidents.timeline import TK, log, with_details, with_view
from router.engine.instant import Instant, from_ts, iso, to_ts
from router.engine.state import FLAP_NONE, EngineContext, GroupState, IncidentState
from router.escalation import escalation_step
from router.model import Notification, Status


def resolving(s: GroupState, inc: IncidentState, now: Instant, ctx: EngineContext) -> bool:
    """Every alert of the group has resolved and the round that resolves the incident is
    still waiting for its group_interval: nobody is paged for a problem that is over."""
    return (inc.open and not inc.declared and ctx.policy(inc.view.severity).auto_resolve
            and s.notified_status is Status.FIRING and s.flap == FLAP_NONE
            and s.update_at is not None and s.update_at > now.ts and not s.firing)


def quieted(s: GroupState) -> bool:
    """Every firing alert of the group is kept quiet (silenced, in maintenance, inhibited,
    deferred): its incident neither escalates nor breaches until one is audible again."""
    return (s.quiet_until is not None and s.firing
            and all(st.muted is not None for st in s.alerts.values() if st.firing))


def _defer(inc: IncidentState, until: float, now: Instant) -> IncidentState:
    """Hold the due paging timers until `until`; escalation resumes with the step that was
    due (its schedule shifts by the wait), not the one the clock would have reached."""
    moved: dict[str, float] = {name: until for name in ("next_page", "ack_due", "resolve_due")
                               if (v := getattr(inc, name)) is not None and v <= now.ts}
    if "next_page" in moved and inc.next_page is not None and inc.paged_at is not None:
        moved["paged_at"] = inc.paged_at + (until - inc.next_page)
    return inc.with_(**moved) if moved else inc


def fire(s: GroupState, inc: IncidentState, now: Instant,
         ctx: EngineContext) -> tuple[IncidentState | None, list[Notification]]:
    """Fire what is due of one incident; None when it is to be forgotten."""
    out: list[Notification] = []
    if resolving(s, inc, now, ctx):
        assert s.update_at is not None
        inc = _defer(inc, s.update_at, now)
    elif inc.open and quieted(s):
        assert s.quiet_until is not None
        inc = _defer(inc, s.quiet_until, now)
    if inc.next_page is not None and inc.next_page <= now.ts:
        inc, more = escalate(s, inc, now, ctx)
        out += more
    if inc.ack_due is not None and inc.ack_due <= now.ts:
        inc = inc.with_(ack_due=None)
        if inc.open and inc.view.acknowledged_at is None:
            inc, more = breach(s, inc, "ack", now, ctx)
            out += more
    if inc.resolve_due is not None and inc.resolve_due <= now.ts:
        inc = inc.with_(resolve_due=None)
        if inc.open:
            inc, more = breach(s, inc, "resolve", now, ctx)
            out += more
    if inc.update_due is not None and inc.update_due <= now.ts:
        inc, more = update_reminder(s, inc, now, ctx)
        out += more
    if inc.ack_expires is not None and inc.ack_expires <= now.ts:
        inc, more = ack_timed_out(s, inc, now, ctx)
        out += more
    if inc.idle_due is not None and inc.idle_due <= now.ts:
        inc, more = idle(s, inc, now, ctx)
        out += more
    if inc.postmortem_soon is not None and inc.postmortem_soon <= now.ts:
        inc = inc.with_(postmortem_soon=None)
        deadline = inc.postmortem_due
        if not inc.view.postmortem_done and deadline is not None:
            left = span(timedelta(seconds=max(0.0, deadline - now.ts)))
            who = inc.view.commander or "the incident commander"
            text = f"the post-mortem is due in {left}: {who}"
            inc = log(inc, now.dt, TK.REMINDER, ROUTER, text, now)
            out += notes(s, inc, K.REMINDER, inc.receivers, ("postmortem-soon",), now,
                         {"reminder": "postmortem_soon", "note": f"Reminder: {text}.",
                          "postmortem_due_at": iso(from_ts(deadline))})
    if inc.postmortem_due is not None and inc.postmortem_due <= now.ts:
        inc = inc.with_(postmortem_due=None)
        inc = inc.with_(forget_at=forget_at(inc, now, ctx))
        if not inc.view.postmortem_done:
            c = cfg(ctx)
            text = f"post-mortem not marked done {span(c.postmortem_due)} after resolution"
            inc = log(inc, now.dt, TK.POSTMORTEM, ROUTER, text, now)
            out += notes(s, inc, K.REMINDER, (*inc.receivers, *c.sla_receivers), ("reminder",),
                         now, {"note": f"Reminder: the {text}.", "reminder": "postmortem",
                               "next_update": "none, the incident is resolved"})
    if inc.actions_due is not None and inc.actions_due <= now.ts:
        inc, more = actions.remind(s, inc, now, ctx)
        out += more
    if inc.forget_at is not None and inc.forget_at <= now.ts:
        # Its open action items are still to remind, its channel still to archive.
        keep = max((t for t in (actions.open_until(inc), inc.archive_due) if t is not None),
                   default=None)
        if keep is not None and keep >= now.ts:
            return inc.with_(forget_at=keep + 1), out
        return None, out
    return inc, out


def escalate(s: GroupState, inc: IncidentState, now: Instant, ctx: EngineContext) -> Effects:
    policy = ctx.oncall.policy(inc.escalation_policy) if inc.escalation_policy else None
    if (policy is None or inc.paged_at is None or not inc.open
            or inc.view.acknowledged_at is not None):
        return inc.with_(next_page=None), []
    st = escalation_step(policy, ctx.oncall.schedule_map(), from_ts(inc.paged_at), False, now.dt)
    nxt = to_ts(st.next_at) if st.next_at is not None else None
    if st.step <= inc.page_step:  # already paged (e.g. the policy changed under us)
        return inc.with_(next_page=nxt if nxt is not None and nxt > now.ts else None), []
    inc = inc.with_(page_step=st.step, next_page=nxt)
    level = st.level + 1
    rounds = f", pass {st.repeat_pass + 1}" if st.repeat_pass else ""
    inc = log(inc, now.dt, TK.ESCALATED, ROUTER,
              f"not acknowledged: escalated to level {level}{rounds} ({policy.name})", now)
    extra = {"step": st.step + 1, "escalation_policy": policy.name}
    inc, pages = page(s, inc, now, ctx, key=page_key(inc, st.step),
                      cause=("page", str(st.step)), level=level, targets=st.targets,
                      actor=ROUTER, what=f"level {level}", extra=extra)
    c = cfg(ctx)
    told = (set(inc.receivers) | set(c.sla_receivers)) - set(c.page_receivers)
    who = ", ".join(st.targets) or "on-call"
    out = notes(s, inc, K.ESCALATE, told, ("escalate", str(st.step)), now,
                {"level": level, "targets": list(st.targets),
                 "note": f"Not acknowledged: escalated to level {level} ({who})."})
    return inc, pages + out


def breach(s: GroupState, inc: IncidentState, sla: str, now: Instant,
           ctx: EngineContext) -> Effects:
    policy = ctx.policy(inc.view.severity)
    limit = policy.ack_sla if sla == "ack" else policy.resolve_sla
    what = "acknowledge" if sla == "ack" else "resolve"
    spent = f" ({span(limit)})" if limit is not None else ""
    text = f"{what} SLA{spent} of {inc.view.severity.value} breached"
    breaches = [*list_of(inc.view.details.get("sla_breaches")), sla]
    inc = with_details(inc, sla_breaches=breaches)
    inc = log(inc, now.dt, TK.SLA_BREACH, ROUTER, text, now)
    out = notes(s, inc, K.SLA_BREACH, (*inc.receivers, *cfg(ctx).sla_receivers), ("sla", sla),
                now, {"sla": sla, "note": f"The {text}."})
    return inc, out


def update_reminder(s: GroupState, inc: IncidentState, now: Instant,
                    ctx: EngineContext) -> Effects:
    """No update for `update_every`: remind the commander (the incident's channel) with the
    update template prefilled, and again every `update_every` until one is posted."""
    every = ctx.policy(inc.view.severity).update_every
    if not inc.open or every is None:
        return inc.with_(update_due=None), []
    inc = inc.with_(update_due=now.ts + every.total_seconds())
    who = inc.view.commander or "the incident commander"
    text = f"stakeholders are due an update (every {span(every)}): {who}"
    inc = log(inc, now.dt, TK.REMINDER, ROUTER, f"update reminder: {text}", now)
    template = (f"[{inc.view.severity.value}] {inc.view.title}: status "
                f"{inc.view.status.value}. What we know: ... What we are doing: ... "
                f"Next update in {span(every)}.")
    out = notes(s, inc, K.REMINDER, inc.receivers, ("update-reminder", str(int(now.ts))), now,
                {"reminder": "update", "note": f"Reminder: {text}.",
                 "template": template,
                 "next_update": iso(from_ts(now.ts + every.total_seconds()))})
    return inc, out


def ack_timed_out(s: GroupState, inc: IncidentState, now: Instant,
                  ctx: EngineContext) -> Effects:
    """Acknowledged but not resolved within `ack_timeout`: back to triggered, and the current
    on-call is paged again from the first level (new page keys, a new cycle)."""
    inc = inc.with_(ack_expires=None)
    if not inc.open or inc.view.acknowledged_at is None:
        return inc, []
    timeout = ctx.policy(inc.view.severity).ack_timeout
    inc = inc.with_(cycle=inc.cycle + 1, escalation_policy=None, paged_at=None, page_step=-1,
                    next_page=None)
    inc = with_view(inc, acknowledged_at=None)
    text = (f"acknowledged {span(timeout) if timeout else ''} ago and not resolved: "
            "paging the on-call again")
    inc = log(inc, now.dt, TK.ESCALATED, ROUTER, text, now)
    c = cfg(ctx)
    told = (set(inc.receivers) | set(c.sla_receivers)) - set(c.page_receivers)
    out = notes(s, inc, K.ESCALATE, told, ("ack-timeout", str(inc.cycle)), now,
                {"note": f"The acknowledgement timed out: {text}.", "level": 1})
    inc, pages = maybe_page(s, inc, now, ctx)
    return inc, out + pages


def idle(s: GroupState, inc: IncidentState, now: Instant, ctx: EngineContext) -> Effects:
    """Nothing firing and no human action for `auto_resolve_after`: it resolves itself (a
    group with anything firing, or a round on its way, is not idle: looked at again later)."""
    period = ctx.policy(inc.view.severity).auto_resolve_after
    if not inc.open or period is None:
        return inc.with_(idle_due=None), []
    if s.firing or s.update_at is not None or s.wait_until is not None:
        return inc.with_(idle_due=now.ts + period.total_seconds()), []
    text = f"resolved: no alert activity and no human action for {span(period)}"
    inc, out, _ = close(s, inc, now.dt, now, ctx, actor=ROUTER, text=text, message="",
                        cause=("idle",))
    return inc, out
