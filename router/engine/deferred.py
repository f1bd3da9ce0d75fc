"""Quiet chat posts for deferred alerts. Pure.

Business hours defer a SEV3/SEV4 alert outside its team's calendar (`router.noise.muters.
HoursMuter`): paging receivers wait for the opening. With `business_hours.chat_when_deferred:
quiet`, the chat receivers (Slack, Teams) among the group's receivers get one quiet post when
alerts become deferred: an update that mentions nobody and says until when it waits. The real
notification follows at the opening if the alert still fires.
"""

from __future__ import annotations

from datetime import UTC, datetime

from router.engine.decide import receivers_for
from router.engine.instant import Instant
from router.engine.quiet import DEFERRED
from router.engine.state import EngineContext, GroupState
from router.model import Alert, Notification, NotificationKind, Severity, stable_id


def newly_deferred(before: GroupState | None, after: GroupState | None) -> list[Alert]:
    """The firing alerts of a group that became deferred in one step."""
    if after is None or after.quiet_until is None:
        return []
    out = []
    for key, st in after.alerts.items():
        if st.muted is None or not st.muted.startswith(DEFERRED + ":") or not st.firing:
            continue
        was = before.alerts.get(key) if before is not None else None
        if was is None or was.muted != st.muted:
            out.append(st.alert)
    return out


def quiet_posts(before: GroupState | None, after: GroupState | None, now: Instant,
                ctx: EngineContext) -> list[Notification]:
    """One quiet post per chat receiver the deferred alerts would reach, for the alerts
    deferred in this step; none unless `ctx.deferred_chat` names chat receivers."""
    if not ctx.deferred_chat or after is None:
        return []
    alerts = newly_deferred(before, after)
    if not alerts:
        return []
    alerts.sort(key=lambda a: (a.starts_at, a.key))
    severity = min((a.severity or ctx.default_severity for a in alerts),
                   key=lambda s: s.rank, default=Severity.SEV3)
    chat = sorted(receivers_for(alerts, severity, ctx) & ctx.deferred_chat)
    if not chat:
        return []
    lead = alerts[0]
    mute = ctx.quiet.mute(lead, now.ts)
    if mute is None or mute.until is None:
        return []
    until = mute.until
    when = datetime.fromtimestamp(until, UTC)
    title = lead.name + (f" ({lead.service})" if lead.service else "")
    if len(alerts) > 1:
        title += f" +{len(alerts) - 1} more"
    text = (f"Deferred until {when:%Y-%m-%d %H:%M} UTC (outside business hours, calendar "
            f"{mute.ref}): paging receivers wait until then.")
    details = {"quiet": True, "deferred_until": when.isoformat(), "status": "deferred",
               "update_label": "Deferred", "note": text, "next_update": when.isoformat(),
               "reasons": ["deferred"]}
    keys = ",".join(a.key for a in alerts)
    return [
        Notification.build(
            id=stable_id(after.key, str(after.epoch), "deferred", keys, str(until), receiver),
            receiver=receiver, kind=NotificationKind.UPDATE, group_key=after.key,
            dedup_key=after.dedup_key, severity=severity, title=title, alerts=tuple(alerts),
            created_at=now.dt, details=dict(details))
        for receiver in chat
    ]
