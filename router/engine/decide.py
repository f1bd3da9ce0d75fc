"""`decide(state, event, now, ctx) -> (state, notifications)`: the alert state machine. Pure.

One call applies one event to one group and then fires whatever of that group's timers are due
at `now`. `now` is only used for timers and `created_at`; event ordering uses the source's own
clock (`Alert.event_time`), so a replayed or replica-delayed event older than what the alert
already has is stale: counted and dropped.

Per group and firing epoch the notifications are: one TRIGGER (after group_wait), batched
UPDATEs (new alerts, partial resolutions, severity rise; at most once per group_interval),
REPEATs after repeat_interval while nothing changed, and one RESOLVE once every alert of the
group is resolved. A firing after a notified resolution opens a new epoch (new dedup key).
A flapping group is announced once (`details.flapping: true`), held open and kept quiet until
it has had no status change for `flap_window`, then its settled state is notified.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from router.engine import incidents
from router.engine.ids import IncidentIds
from router.engine.incidents import channel
from router.engine.instant import Instant, from_ts, to_ts
from router.engine.state import (
    FLAP_DAMPED,
    FLAP_NONE,
    FLAP_STARTED,
    FLAP_STOPPED,
    AlertState,
    EngineContext,
    GroupState,
    Tick,
    group_key_of,
)
from router.model import (
    Alert,
    AlertEvent,
    CommandEvent,
    Notification,
    NotificationKind,
    Severity,
    Status,
    stable_id,
)
from router.noise.heartbeats import HEARTBEAT
from router.noise.heartbeats import PREFIX as HEARTBEAT_PREFIX

Event = AlertEvent | CommandEvent | Tick

K = NotificationKind
_RANK = {sev: sev.rank for sev in Severity}  # Enum.value is slow on hot paths


class Decision(NamedTuple):
    """What `decide` returns: the group's new state (None: delete it), the notifications, and
    the incident id counter after any ids this decision allocated."""

    state: GroupState | None
    notifications: list[Notification]
    ids: IncidentIds


def decide(
    state: GroupState | None,
    event: Event,
    now: datetime,
    ctx: EngineContext,
    ids: IncidentIds,
    *,
    flush: bool = True,
) -> Decision:
    """Apply `event` to the group's `state`; None in means a new group, None out means delete.

    With `flush=False` an alert event only updates state and arms timers, and the caller sends
    the group a `Tick` once it has applied a whole batch of events: `Engine` does this, so a
    burst of SEV1 alerts in one batch gives one TRIGGER listing all of them.

    With `ctx.incidents` set, the group's incidents follow (`router.engine.incidents`):
    commands act on them, and new ones are numbered from `ids`; the counter after them is
    returned, `ids` itself is not changed.
    """
    at = Instant.of(now)
    if isinstance(event, CommandEvent) and event.command == HEARTBEAT:
        return _beat(state, event, now, ctx, ids)
    if isinstance(event, Tick) and state is not None and state.heartbeat_due is not None and (
            state.heartbeat_due <= at.ts):
        return _missed(state, now, ctx, ids)
    if isinstance(event, CommandEvent):
        if ctx.incidents is None:
            return Decision(state, [], ids)
        new, notes, ids = incidents.apply_command(state, event, at, ctx, ids)
        new, notes = channel.follow(state, new, notes, at, ctx)
        if new is None:
            return Decision(None, notes, ids)
        return Decision(_expire(new, at.ts, ctx, timers=False), notes, ids)
    timers = isinstance(event, Tick)
    before = state
    if isinstance(event, Tick):
        if state is None:
            return Decision(None, [], ids)
        s, notes = _step(state, at, ctx, timers=True)
    else:
        alert = event.alert
        if state is None:
            if not flush:
                return Decision(_new_group(alert, at.ts, ctx), [], ids)
            state = GroupState.build(key=group_key_of(alert))
        state = _apply_alert(state, alert, at.ts, ctx)
        if not flush:
            # Batched: the caller re-arms each touched group once after the batch (`rearm`),
            # so a storm into one big group costs O(1) per alert here, not O(group size).
            return Decision(_hold(state, alert), [], ids)
        s, notes = _step(state, at, ctx, timers=False, flush=flush)
    if ctx.incidents is not None:
        s, notes, ids = incidents.after_group(before, s, notes, at, ctx, ids, timers=timers)
        followed, notes = channel.follow(before, s, notes, at, ctx)
        s = followed if followed is not None else s
    if timers and ctx.compact_resolved:
        # The round that announced a resolution is behind it now (the incident read the
        # resolved alerts above): compact them here rather than at the next round, so a group
        # never carries them through a whole group_interval of decisions.
        s = _compact(s, at.ts - ctx.resolved_retention.total_seconds(), ctx)
    return Decision(_expire(s, at.ts, ctx, timers=timers), notes, ids)


def _beat(state: GroupState | None, event: CommandEvent, now: datetime, ctx: EngineContext,
          ids: IncidentIds) -> Decision:
    """A heartbeat: the next one is due `interval + grace` from now; the missing-heartbeat
    alert, if raised, resolves."""
    key = event.group_key or ""
    hb = ctx.heartbeats.get(key.removeprefix(HEARTBEAT_PREFIX))
    if hb is None:
        return Decision(state, [], ids)
    due = Instant.of(now).ts + (hb.interval + hb.grace).total_seconds()
    missing = state.alerts.get(f"router:heartbeat-{hb.name}") if state is not None else None
    notes: list[Notification] = []
    if state is not None and missing is not None and missing.firing:
        back = AlertEvent.of(hb.back_alert(missing.alert, now))
        state, notes, ids = decide(state, back, now, ctx, ids)
    s = state if state is not None else GroupState.build(key=key)
    return Decision(s.with_(heartbeat_due=due), notes, ids)


def _missed(state: GroupState, now: datetime, ctx: EngineContext,
            ids: IncidentIds) -> Decision:
    """No beat by the deadline: raise the router's own alert in the heartbeat's group."""
    hb = ctx.heartbeats.get(state.key.removeprefix(HEARTBEAT_PREFIX))
    due = state.heartbeat_due
    # The group's other timers first (a resolution on its way goes out before a new alarm).
    after, notes, ids = decide(state.with_(heartbeat_due=None), Tick.build(group_key=state.key),
                               now, ctx, ids)
    if hb is None or due is None:
        return Decision(after, notes, ids)
    missing = AlertEvent.of(hb.missing_alert(from_ts(due - hb.grace.total_seconds()), now))
    after, more, ids = decide(after, missing, now, ctx, ids)
    return Decision(after, notes + more, ids)


def rearm(state: GroupState, now: datetime, ctx: EngineContext) -> GroupState:
    """After a batch of alert events applied with `flush=False`: arm the group's timers once,
    exactly as a per-event step would have left them (no notification is sent here)."""
    at = Instant.of(now)
    s, _ = _step(state, at, ctx, timers=False, flush=False)
    expired = _expire(s, at.ts, ctx, timers=False)
    return expired if expired is not None else s


def _hold(s: GroupState, alert: Alert) -> GroupState:
    """What a per-event step does to `w` that later events of the same batch depend on.

    `_apply_alert` starts a new epoch token only while no first notification is pending
    (`w is None`); a step after a firing alert arms `w`, and one after the last firing alert
    resolves (nothing held open) clears it. `inf` marks "armed"; `rearm` replaces it by the
    real deadline (it takes the minimum), so the result does not depend on batch boundaries.
    """
    if s.notified_status is not None:
        return s
    if alert.status is Status.FIRING:
        return s if s.wait_until is not None else s.with_(wait_until=_ARMED)
    if (s.wait_until is not None and s.flap != FLAP_STARTED
            and not any(st.firing for st in s.alerts.values())):
        return s.with_(wait_until=None)
    return s


_ARMED = float("inf")


def _new_group(alert: Alert, now: float, ctx: EngineContext) -> GroupState:
    """`_hold(_apply_alert(GroupState(k=...), alert))` for the first alert of a new group,
    built in one go (most alerts of a busy router open their own group)."""
    t = to_ts(alert.event_time)
    key = alert.key
    k = group_key_of(alert)
    if alert.status is not Status.FIRING:
        return GroupState.build(key=k, alerts={key: AlertState.build(alert=alert, time=t)})
    history = (t,) if t > t - ctx.flap_window.total_seconds() else ()
    if len(history) > ctx.flap_threshold:  # flapping at once: only with an invalid context
        return _hold(_apply_alert(GroupState.build(key=k), alert, now, ctx), alert)
    state = AlertState.build(alert=alert, time=t, changes=history)
    return GroupState.build(key=k, alerts={key: state}, epoch_time=int(t * 1000),
                            wait_until=_ARMED)


# --- applying one alert --------------------------------------------------------------------


def severity_of(alert: Alert, ctx: EngineContext) -> Severity:
    return alert.severity or ctx.default_severity


def _most_severe(severities: Iterable[Severity]) -> Severity | None:
    return min(severities, key=_RANK.__getitem__, default=None)


def _most_severe_of(states: Iterable[AlertState], ctx: EngineContext) -> Severity | None:
    """`_most_severe` of the alerts' severities (a loop: this runs once per alert event)."""
    best: Severity | None = None
    rank = 9
    default = ctx.default_severity
    for st in states:
        sev = st.alert.severity or default
        r = _RANK[sev]
        if r < rank:
            best, rank = sev, r
    return best


def is_duplicate(s: GroupState | None, alert: Alert, ctx: EngineContext) -> bool:
    """The group already has exactly this: same status, source time and severity (an HA pair's
    second delivery, a source's re-send). Deciding it would only count it, so the engine counts
    it without deciding, and the group is neither re-armed nor written again."""
    if s is None:
        return False
    cur = s.alerts.get(alert.key)
    firing = alert.status is Status.FIRING
    if cur is None:
        past = s.gone.get(alert.key) if s.gone else None
        return past is not None and not firing and to_ts(alert.event_time) == past[0]
    return (firing == cur.firing and to_ts(alert.event_time) == cur.time
            and severity_of(alert, ctx) is severity_of(cur.alert, ctx))


def _apply_alert(s: GroupState, alert: Alert, now: float, ctx: EngineContext) -> GroupState:
    t = to_ts(alert.event_time)
    firing = alert.status is Status.FIRING
    key = alert.key
    cur = s.alerts.get(key)
    duplicate = False
    if cur is None and key in s.gone:
        past = s.gone[key]
        if t < past[0] or (t == past[0] and firing):  # older than its resolution
            return s.with_(stale=s.stale + 1)
        if not firing:  # resolved again: nothing new to tell
            return s.with_(duplicates=s.duplicates + 1, gone={**s.gone, key: (t, *past[1:])})
        # Firing again: back with its flap history, as if it had never been compacted.
        new = AlertState.build(alert=alert, time=t, changes=past[1:])
        status_changed = True
        s = s.with_(gone={k: v for k, v in s.gone.items() if k != key})
    elif cur is None:
        # A resolution for an unknown alert is kept too: it makes a late firing recognisably stale.
        new = AlertState.build(alert=alert, time=t)
        status_changed = firing
    elif t < cur.time or (t == cur.time and firing and not cur.firing):
        # Older than what we know (a resolution wins a tie with its own firing).
        return s.with_(stale=s.stale + 1)
    elif firing == cur.firing:
        same_severity = severity_of(alert, ctx) is severity_of(cur.alert, ctx)
        if same_severity and t == cur.time:
            return s.with_(duplicates=s.duplicates + 1)
        alert = _kept_start(alert, cur.alert)
        # Same status with a newer source time or another severity: keep the newer data.
        duplicate = same_severity
        new = cur.with_(alert=alert, time=t)
        status_changed = False
    else:
        new = cur.with_(alert=_kept_start(alert, cur.alert), time=t)
        status_changed = True

    update: dict[str, Any] = {}
    if duplicate:
        update["duplicates"] = s.duplicates + 1
    if status_changed:
        cutoff = t - ctx.flap_window.total_seconds()
        history = tuple(h for h in (*new.changes, t) if h > cutoff)[-(ctx.flap_threshold + 1) :]
        new = new.with_(changes=history)
        if firing:
            update["expires"] = None
            if s.notified_status is Status.RESOLVED:
                # Firing again after a notified resolution: a new epoch, paged afresh.
                update.update(epoch=s.epoch + 1, epoch_time=int(t * 1000), sequence=0,
                              notified_status=None, notified_severity=None, receivers=(),
                              repeat_at=None)
            elif s.notified_status is None and s.wait_until is None:
                update["epoch_time"] = int(t * 1000)
        settle = now + ctx.flap_window.total_seconds()
        if len(history) > ctx.flap_threshold:
            update["flap_settles"] = settle
            if s.flap == FLAP_NONE:
                update["flap"] = FLAP_STARTED
            elif s.flap == FLAP_STOPPED:  # stop not yet announced: receivers still see it flapping
                update["flap"] = FLAP_DAMPED
        elif s.flap in (FLAP_STARTED, FLAP_DAMPED):
            update["flap_settles"] = settle  # any status change while flapping postpones settling
    alerts = dict(s.alerts)
    alerts[key] = new
    update["alerts"] = alerts
    return s.with_(**update)


def _kept_start(alert: Alert, known: Alert) -> Alert:
    """A resolution keeps the start of the firing it ends: sources that only say when the
    state changed (a CloudWatch OK message) would otherwise report a zero-length problem."""
    if alert.status is Status.RESOLVED and known.starts_at < alert.starts_at:
        return alert.replace(starts_at=known.starts_at)
    return alert


# --- timers and notifications ---------------------------------------------------------------


def _group_severity(s: GroupState, firing: list[AlertState], ctx: EngineContext) -> Severity:
    sev = _most_severe_of(firing, ctx)
    if sev is None:
        sev = s.notified_severity or _most_severe_of(s.alerts.values(), ctx)
    return sev or ctx.default_severity


def _timers(
    s: GroupState, firing: list[AlertState], sev: Severity, ctx: EngineContext
) -> tuple[float, float, float]:
    """group_wait, group_interval, repeat_interval in seconds: the severity policy's, unless
    rules override them on the alerts (the smallest override of the group wins)."""
    policy = ctx.policy(sev)
    gw: timedelta | None = None
    gi: timedelta | None = None
    ri: timedelta | None = None
    for st in firing or s.alerts.values():
        a = st.alert
        v = a.group_wait
        if v is not None and (gw is None or v < gw):
            gw = v
        v = a.group_interval
        if v is not None and (gi is None or v < gi):
            gi = v
        v = a.repeat_interval
        if v is not None and (ri is None or v < ri):
            ri = v
    return (
        (gw if gw is not None else policy.group_wait).total_seconds(),
        (gi if gi is not None else policy.group_interval).total_seconds(),
        (ri if ri is not None else policy.repeat_interval).total_seconds(),
    )


def _pending(s: GroupState, firing: list[AlertState], sev: Severity,
             muted: bool) -> NotificationKind | None:
    """What the group owes its receivers now, ignoring timing. `firing` are the audible firing
    alerts; `muted` says whether others fire but are kept quiet (they hold a resolution)."""
    if s.flap == FLAP_DAMPED:
        return None
    if s.notified_status is None:
        # An epoch starts with something audible firing; once notified, a flapping group is
        # held open (below) until it settles.
        return K.TRIGGER if firing else None
    if s.notified_status is Status.RESOLVED:
        return None
    if s.flap == FLAP_STARTED:
        return K.UPDATE
    if not firing:
        return None if muted else K.RESOLVE
    if s.flap == FLAP_STOPPED:
        return K.UPDATE
    if s.notified_severity is not None and _RANK[sev] < _RANK[s.notified_severity]:
        return K.UPDATE
    if any(st.firing != st.notified for st in s.alerts.values() if st.muted is None):
        return K.UPDATE
    return None


# How soon a mute without an end of its own (inhibition) is looked at again.
QUIET_RECHECK_SECONDS = 60.0


def _mute(s: GroupState, now: float,
          ctx: EngineContext) -> tuple[GroupState, list[AlertState], bool, bool]:
    """Mark which firing alerts are kept quiet now (`quiet.Mute`) and arm `quiet_until`;
    the audible firing alerts, whether any firing alert is muted, and whether a mute of a
    firing alert lifted in this step."""
    quiet = ctx.quiet
    changed: dict[str, AlertState] = {}
    audible: list[AlertState] = []
    until: float | None = None
    lifted = False
    for st in s.alerts.values():
        m = quiet.mute(st.alert, now) if st.firing and not quiet.empty else None
        tag = f"{m.reason}:{m.ref}" if m is not None else None
        if tag != st.muted:
            lifted = lifted or (tag is None and st.firing)
            st = changed[st.alert.key] = st.with_(muted=tag)
        if m is not None:
            again = m.until if m.until is not None and m.until > now else (
                now + QUIET_RECHECK_SECONDS)
            until = again if until is None else min(until, again)
        elif st.firing:
            audible.append(st)
    if changed or until != s.quiet_until:
        s = s.with_(alerts={**s.alerts, **changed} if changed else s.alerts, quiet_until=until)
    return s, audible, until is not None, lifted


def _step(
    s: GroupState,
    at: Instant,
    ctx: EngineContext,
    *,
    timers: bool,
    flush: bool = True,
) -> tuple[GroupState, list[Notification]]:
    """Re-arm the group's timers after a change and fire what is due.

    After an alert event (`timers=False`) only a due first notification goes out (SEV1's
    group_wait is 0), and not even that with `flush=False`; updates, resolutions, reminders,
    flap settling and expiry wait for the group's Tick, so that every change of one batch of
    events goes out together.
    """
    now = at.ts
    notes: list[Notification] = []
    if timers:
        if s.flap_settles is not None and s.flap_settles <= now:
            # Flapping settled. If it was never announced there is nothing to take back.
            fl = FLAP_STOPPED if s.flap == FLAP_DAMPED else FLAP_NONE
            s = s.with_(flap_settles=None, flap=fl)
        s = _prune(s, now, ctx)
    muted = lifted = False
    if ctx.quiet.empty and s.quiet_until is None:
        firing = [st for st in s.alerts.values() if st.firing]
    else:
        s, firing, muted, lifted = _mute(s, now, ctx)
    sev = _group_severity(s, firing, ctx)
    group_wait, group_interval, repeat_interval = _timers(s, firing, sev, ctx)
    kind = _pending(s, firing, sev, muted)

    w: float | None = None
    u: float | None = None
    if kind is K.TRIGGER:
        # An alert kept quiet past its group_wait notifies as soon as the mute lifts.
        w = now if lifted else now + group_wait
        w = w if s.wait_until is None else min(s.wait_until, w)
    elif kind is not None:
        u = max(now, (s.notified_at if s.notified_at is not None else now) + group_interval)
        u = u if s.update_at is None else min(s.update_at, u)
    if w != s.wait_until or u != s.update_at:
        s = s.with_(wait_until=w, update_at=u)

    due = w if kind is K.TRIGGER else u
    if (
        kind is not None and due is not None and due <= now
        and (timers or (flush and kind is K.TRIGGER))
    ):
        s, notes = _notify(s, kind, firing, sev, at, ctx, repeat_interval)
    elif timers and s.repeat_at is not None and s.repeat_at <= now:
        if kind is None and firing and s.notified_status is Status.FIRING and s.flap == FLAP_NONE:
            s, notes = _notify(s, K.REPEAT, firing, sev, at, ctx, repeat_interval)
        elif s.notified_status is Status.FIRING:  # damped or an update is on its way: remind later
            s = s.with_(repeat_at=now + repeat_interval)
        else:
            s = s.with_(repeat_at=None)
    return s, notes


def _expire(s: GroupState, now: float, ctx: EngineContext, *, timers: bool) -> GroupState | None:
    """A group with nothing firing, pending or open (no incident kept) is deleted after
    `resolved_retention`; None means delete now."""
    quiet = (
        s.notified_status is not Status.FIRING and not s.firing and s.flap == FLAP_NONE
        and s.wait_until is None and s.update_at is None and not s.incidents
        and s.heartbeat_due is None
    )
    if quiet:
        x = s.expires if s.expires is not None else now + ctx.resolved_retention.total_seconds()
        if x <= now and timers:
            return None
        if x != s.expires:
            s = s.with_(expires=x)
    elif s.expires is not None:
        s = s.with_(expires=None)
    return s


def _prune(s: GroupState, now: float, ctx: EngineContext) -> GroupState:
    """Forget the compacted alerts resolved longer than the retention ago, and compact what
    is left to compact (`_compact`)."""
    cutoff = now - ctx.resolved_retention.total_seconds()
    gone = s.gone
    if gone and any(v[0] < cutoff for v in gone.values()):
        s = s.with_(gone={k: v for k, v in gone.items() if v[0] >= cutoff})
    return _compact(s, cutoff, ctx)


def _compact(s: GroupState, cutoff: float, ctx: EngineContext) -> GroupState:
    """Compact the alerts whose resolution is behind them (notified, or never notified as
    firing) into `gone` (time and flap history); those resolved before `cutoff` go at once.
    A fully resolved group keeps its alerts: it expires as a whole (`_expire`), and its
    resolution lists them. Without `ctx.compact_resolved` only those before `cutoff` go."""
    done = [k for k, st in s.alerts.items() if not st.firing and not st.notified
            and (ctx.compact_resolved or st.time < cutoff)]
    if not done or len(done) == len(s.alerts):
        return s
    gone = dict(s.gone)
    alerts = dict(s.alerts)
    for k in done:
        st = alerts.pop(k)
        if st.time >= cutoff:
            gone[k] = (st.time, *st.changes)
    return s.with_(alerts=alerts, gone=gone)


def receivers_for(alerts: Iterable[Alert], sev: Severity, ctx: EngineContext) -> set[str]:
    """Who hears a group's notification: the alerts' receivers, else the severity policy's,
    else the default receivers; for a severity routed to the digest or to tickets, those
    receivers instead (`router.engine.digest` takes the digest's notifications)."""
    route = ctx.policy(sev).route
    if route == "digest":
        return set(ctx.digest.receivers)
    if route == "ticket":
        return set(ctx.ticket_receivers)
    found = {r for a in alerts for r in a.receivers}
    return found or set(ctx.policy(sev).receivers) or set(ctx.default_receivers)


def _reasons(s: GroupState, kind: NotificationKind, sev: Severity) -> list[str]:
    if kind is K.REPEAT:
        return ["repeat"]
    reasons: list[str] = []
    if s.flap == FLAP_STARTED:
        reasons.append("flapping_started")
    elif s.flap == FLAP_STOPPED:
        reasons.append("flapping_stopped")
    if kind is not K.TRIGGER:
        if any(st.firing and not st.notified and st.muted is None for st in s.alerts.values()):
            reasons.append("alerts_firing")
        if any(st.notified and not st.firing for st in s.alerts.values()):
            reasons.append("alerts_resolved")
        if s.notified_severity is not None and _RANK[sev] < _RANK[s.notified_severity]:
            reasons.append("severity_raised")
        elif s.notified_severity is not None and _RANK[sev] > _RANK[s.notified_severity]:
            reasons.append("severity_lowered")
    return reasons


def _notify(
    s: GroupState,
    kind: NotificationKind,
    firing: list[AlertState],
    sev: Severity,
    at: Instant,
    ctx: EngineContext,
    repeat_interval: float,
) -> tuple[GroupState, list[Notification]]:
    now = at.ts
    # Audible firing alerts plus those resolved since the last notification (a muted alert is
    # neither); sorted for determinism.
    included = [st for st in s.alerts.values()
                if st.muted is None and (st.firing or st.notified)] or [
        st for st in s.alerts.values() if st.muted is None] or list(s.alerts.values())
    if len(included) > 1:
        included.sort(
            key=lambda st: (not st.firing, _RANK[severity_of(st.alert, ctx)], st.alert.starts_at,
                            st.alert.key)
        )
    alerts = tuple(st.alert for st in included)
    told = receivers_for(alerts, sev, ctx)
    if s.receivers:
        told.update(s.receivers)
    receivers = tuple(sorted(told))
    lead = alerts[0]
    title = lead.name + (f" ({lead.service})" if lead.service else "")
    if len(alerts) > 1:
        title += f" +{len(alerts) - 1} more"
    details: dict[str, Any] = {
        "epoch": s.epoch,
        "sequence": s.sequence,
        "flapping": s.flap in (FLAP_STARTED, FLAP_DAMPED),
        "firing": len(firing),
        "resolved": len(alerts) - sum(1 for a in alerts if a.status is Status.FIRING),
        "reasons": _reasons(s, kind, sev),
        "duplicates": s.duplicates,
        "stale": s.stale,
    }
    if s.notified_severity is not None and s.notified_severity is not sev:
        details["previous_severity"] = s.notified_severity.value
    epoch = f"{s.epoch}.{s.epoch_time}"
    dedup_key = s.dedup_key
    sequence = str(s.sequence)
    notes = [
        Notification.build(
            id=stable_id(s.key, epoch, kind.value, sequence, receiver),
            receiver=receiver,
            kind=kind,
            group_key=s.key,
            dedup_key=dedup_key,
            severity=sev,
            title=title,
            alerts=alerts,
            created_at=at.dt,
            details=dict(details),  # one each, as validation would copy it
        )
        for receiver in receivers
    ]
    synced = {
        key: st.with_(notified=st.firing)
        for key, st in s.alerts.items()
        if st.notified != st.firing and st.muted is None
    }
    resolve = kind is K.RESOLVE
    update: dict[str, Any] = {
        "sequence": s.sequence + 1,
        "notified_at": now,
        "notified_status": Status.RESOLVED if resolve else Status.FIRING,
        "notified_severity": sev,
        "receivers": receivers,
        "wait_until": None,
        "update_at": None,
        "repeat_at": None if resolve else now + repeat_interval,
        "flap": _FLAP_AFTER_NOTIFY.get(s.flap, s.flap),
    }
    if synced:
        update["alerts"] = {**s.alerts, **synced}
    return s.with_(**update), notes


_FLAP_AFTER_NOTIFY = {FLAP_STARTED: FLAP_DAMPED, FLAP_STOPPED: FLAP_NONE}
