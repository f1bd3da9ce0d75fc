"""An incident follows the alerts of its group. Pure.

After each step of the alert state machine (`router.engine.decide`): a notification round at
or above `open_at` opens an incident (or reopens the last one, within the reopen window); every
round is recorded on its timeline; a round that resolves the group resolves the incident with
it (`auto_resolve`), so each receiver hears that resolution once; then, on a Tick, the
incidents' own timers fire.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from router.engine.ids import IncidentIds
from router.engine.incidents.closing import close
from router.engine.incidents.formatting import ROUTER, K, cfg, group_alerts, names, tag
from router.engine.incidents.opening import (
    can_reopen,
    new_incident,
    reopen,
    set_severity,
    start,
)
from router.engine.incidents.timeline import TK, entry, insert, log, with_details
from router.engine.incidents.timers import fire
from router.engine.instant import Instant, iso, utc
from router.engine.state import EngineContext, GroupState, IncidentState
from router.incidents import TimelineEntry
from router.model import Alert, Notification, NotificationKind, Status

STAYS_OPEN = ("All alerts have resolved; the incident stays open until a person resolves it "
              "(auto_resolve is off for {severity}).")


def impact_of(alerts: Iterable[Alert]) -> str:
    for key in ("impact", "summary", "description"):
        for a in alerts:
            if a.annotations.get(key):
                return a.annotations[key]
    return ""


# An incident keeps the details of at most this many alerts: every live one, then the most
# recently resolved (a group whose pods come and go must not grow its state without bound).
MAX_ALERTS = 100
# A round with more alerts firing (or resolving) than this says so in one entry, not one each.
MAX_ALERT_ENTRIES = 3


def observe(before: GroupState | None, s: GroupState, inc: IncidentState, now: Instant,
            opened: bool, out: list[Notification], kind: NotificationKind) -> IncidentState:
    """Record a notification round of the group on the incident in one copy (hot path: an
    alert storm opens many incidents): alerts notified firing / resolved, who was told."""
    prev = before.alerts if before is not None else {}
    keys = list(inc.view.alerts)
    raw = inc.view.details.get("alert_info")
    info: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    fired: list[Alert] = []
    resolved: list[Alert] = []
    for key, st in sorted(s.alerts.items(), key=lambda kv: (kv[1].time, kv[0])):
        old = prev.get(key)
        was = old.notified if old is not None else False
        a = st.alert
        if st.notified and (opened or not was):
            fired.append(a)
        elif was and not st.notified and not st.firing:
            resolved.append(a)
        else:
            continue
        if key not in keys:
            keys.append(key)
        info[key] = {"name": a.name, "service": a.service, "started_at": iso(a.starts_at),
                     "ended_at": iso(a.ends_at) if a.ends_at and not st.firing else None}
    entries = [*_alert_entries(fired, True, now), *_alert_entries(resolved, False, now)]
    if out and kind is not K.REPEAT:  # reminders are not news
        receivers = ", ".join(names(n.receiver for n in out))
        entries.append(entry(utc(now.dt), TK.NOTIFIED, ROUTER,
                             f"{kind.value} sent to {receivers}", now))
    if len(keys) > MAX_ALERTS:
        keys, info = bounded(keys, info)
    rc = tuple(names((*inc.receivers, *s.receivers)))
    view = inc.view.with_(
        alerts=tuple(keys),
        timeline=insert(inc.view.timeline, entries),
        details={**inc.view.details, "alert_info": info, "receivers": list(rc)},
    )
    return inc.with_(view=view, receivers=rc)


def _alert_entries(alerts: list[Alert], firing: bool, now: Instant) -> list[TimelineEntry]:
    """One entry per alert of a round, or one for all of them when there are many."""
    if len(alerts) <= MAX_ALERT_ENTRIES:
        if firing:
            return [entry(a.starts_at, TK.ALERT_FIRED, a.source,
                          f"{a.name} firing" + (f": {s}" if (s := a.annotations.get("summary"))
                                                else ""), now)
                    for a in alerts]
        return [entry(a.ends_at or now.dt, TK.ALERT_RESOLVED, a.source, f"{a.name} resolved",
                      now) for a in alerts]
    shown = ", ".join(_named(a) for a in alerts[:MAX_ALERT_ENTRIES])
    more = len(alerts) - MAX_ALERT_ENTRIES
    if firing:
        return [entry(min(a.starts_at for a in alerts), TK.ALERT_FIRED, alerts[0].source,
                      f"{len(alerts)} alerts firing: {shown} +{more} more", now)]
    ends = [a.ends_at for a in alerts if a.ends_at is not None]
    return [entry(max(ends) if ends else now.dt, TK.ALERT_RESOLVED, alerts[0].source,
                  f"{len(alerts)} alerts resolved: {shown} +{more} more", now)]


def _named(a: Alert) -> str:
    """An alert among others of its group, which mostly share its name."""
    where = a.labels.get("pod") or a.labels.get("instance") or a.labels.get("host")
    return f"{a.name} ({where})" if where else a.name


def bounded(keys: list[str], info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The incident's alerts without its oldest resolved ones beyond MAX_ALERTS."""
    excess = len(keys) - MAX_ALERTS
    drop: set[str] = set()
    for key in keys:  # oldest first
        if len(drop) >= excess:
            break
        item = info.get(key)
        if isinstance(item, dict) and item.get("ended_at"):
            drop.add(key)
    if not drop:
        return keys, info
    return [k for k in keys if k not in drop], {k: v for k, v in info.items() if k not in drop}


def replace_incident(s: GroupState, inc: IncidentState, **changes: Any) -> GroupState:
    """`s` with `inc` in place of the incident of its id (or added), plus `changes`."""
    incidents = tuple(inc if x.view.id == inc.view.id else x for x in s.incidents)
    if not any(x.view.id == inc.view.id for x in s.incidents):
        incidents = (*incidents, inc)
    return s.with_(incidents=incidents, **changes)


def after_group(before: GroupState | None, s: GroupState, out: list[Notification], now: Instant,
                ctx: EngineContext, ids: IncidentIds, *, timers: bool,
                ) -> tuple[GroupState, list[Notification], IncidentIds]:
    """After the alert state machine's step: the group's round on its incident, then (on a
    Tick) the incidents' due timers."""
    prev = (before.epoch, before.sequence) if before is not None else (0, 0)
    # Did the group notify in this step? (It does even with no receiver to tell.)
    if s.sequence > 0 and (s.epoch, s.sequence) != prev and s.notified_severity is not None:
        s, out, ids = _round(before, s, out, now, ctx, ids)
    inc = s.incident
    if inc is not None and (s.quiet_until is not None or inc.view.details.get("quiet")):
        quieter = _quiet_entries(s, inc, now)
        if quieter is not inc:
            s = replace_incident(s, quieter)
    if timers and s.incidents:
        out = list(out)
        for x in s.incidents:
            new, emitted = fire(s, x, now, ctx)
            out += emitted
            if new is None:
                s = s.with_(incidents=tuple(y for y in s.incidents if y.view.id != x.view.id))
            elif new is not x:
                s = replace_incident(s, new)
    return s, out, ids


def _quiet_entries(s: GroupState, inc: IncidentState, now: Instant) -> IncidentState:
    """Every alert of the incident muted or unmuted since the last look, on its timeline
    (`details.quiet` remembers what was logged)."""
    raw = inc.view.details.get("quiet")
    logged: dict[str, str] = dict(raw) if isinstance(raw, dict) else {}
    now_quiet = {key: st.muted for key, st in s.alerts.items()
                 if st.muted is not None and key in inc.view.alerts}
    if now_quiet == logged:
        return inc
    for key, why in now_quiet.items():
        if logged.get(key) != why:
            reason, _, ref = why.partition(":")
            name = s.alerts[key].alert.name
            inc = log(inc, now.dt, TK.QUIETED, ROUTER, f"{name} kept quiet: {reason} ({ref})",
                      now)
    for key, was in logged.items():
        st = s.alerts.get(key)
        if key not in now_quiet and st is not None and st.firing:
            inc = log(inc, now.dt, TK.QUIETED, ROUTER,
                      f"{st.alert.name} no longer kept quiet ({was})", now)
    return with_details(inc, quiet=now_quiet)


def _round(before: GroupState | None, s: GroupState, out: list[Notification], now: Instant,
           ctx: EngineContext, ids: IncidentIds,
           ) -> tuple[GroupState, list[Notification], IncidentIds]:
    severity = s.notified_severity
    assert severity is not None
    firing = s.notified_status is Status.FIRING
    kind = out[0].kind if out else (K.UPDATE if firing else K.RESOLVE)
    inc = s.incident
    opened = False
    if (inc is None and firing and s.epoch != s.incident_epoch and s.firing
            and severity.at_least(cfg(ctx).open_at)):
        inc, ids = _open(s, out, severity, now, ctx, ids)
        opened = True
    if inc is None:
        return s, out, ids
    inc = observe(before, s, inc, now, opened, out, kind)
    more: list[Notification] = []
    if opened:
        inc, more = start(s, inc, now, ctx)
    tagged = [tag(n, inc) for n in out]  # (opened: with the update clock start() armed)
    if opened:
        pass
    elif firing and severity.rank < inc.view.severity.rank:
        inc, more = set_severity(s, inc, severity, now, ctx, ROUTER, "alerts")
    elif not firing and ctx.policy(inc.view.severity).auto_resolve:
        inc, more, details = close(
            s, inc, now.dt, now, ctx, actor=ROUTER, text="resolved: all alerts resolved",
            message="", cause=("resolve", "alerts"), told=(n.receiver for n in tagged))
        tagged = [n.with_(details={**n.details, **details}) for n in tagged]
    elif not firing:
        text = STAYS_OPEN.format(severity=inc.view.severity.value)
        inc = log(inc, now.dt, TK.STATUS_UPDATE, ROUTER, text, now)
        # The group's resolution would close the vendors' incident: an update instead.
        tagged = [n.with_(kind=K.UPDATE, details={**n.details, "note": text,
                                                  "status": inc.view.status.value})
                  for n in tagged]
    changes = {"incident_epoch": s.epoch} if opened else {}
    return replace_incident(s, inc, **changes), tagged + more, ids


def _open(s: GroupState, out: list[Notification], severity: Any, now: Instant,
          ctx: EngineContext, ids: IncidentIds) -> tuple[IncidentState, IncidentIds]:
    """A new incident for the group's firing round, or its last one reopened."""
    dedup_key = out[0].dedup_key if out else s.dedup_key
    last = s.incidents[-1] if s.incidents else None
    if last is not None and can_reopen(last, now, ctx):
        window = cfg(ctx).reopen_window
        why = (f"firing again within {int(window.total_seconds() // 60)} min "
               f"of the resolution")
        return reopen(last, dedup_key, severity, why, now), ids
    alerts = out[0].alerts if out else group_alerts(s)
    first = alerts[0]
    title = first.name + (f" ({first.service})" if first.service else "")
    incident_id, ids = ids.allocate(now.dt)
    owner = ctx.oncall.services.get(first.service) if first.service else None
    inc = new_incident(
        incident_id=incident_id, group_key=s.key, title=title, severity=severity,
        impact=impact_of(alerts), service=first.service,
        team=first.team or (owner.team if owner is not None else None), commander=None,
        dedup_key=dedup_key, receivers=s.receivers,
        started_at=min(a.starts_at for a in alerts), opened_at=now.dt, actor=ROUTER,
        how="opened by alerts", now=now)
    return inc, ids
