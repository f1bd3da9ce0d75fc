"""What incident notifications say: ids, dedup keys, details, and who they reach. Pure."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from router.config import IncidentsConfig
from router.engine.instant import Instant, from_ts, iso
from router.engine.state import EngineContext, GroupState, IncidentState
from router.model import Alert, Notification, NotificationKind, stable_id

K = NotificationKind
ROUTER = "router"
MAX_NOTE_ALERTS = 50
# What goes to the public status page carries no internal names (channel, people).
_INTERNAL = ("channel", "commander", "actor")


def cfg(ctx: EngineContext) -> IncidentsConfig:
    assert ctx.incidents is not None
    return ctx.incidents


def names(receivers: Iterable[str]) -> list[str]:
    return sorted(set(receivers))


def list_of(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


@functools.lru_cache(maxsize=4096)
def slug(text: str, limit: int = 40) -> str:
    """Slack-channel-safe slug: lower case, `a-z0-9-`, at most `limit` characters."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].strip("-") or "incident"


def channel_name(incident_id: str, title: str) -> str:
    """`#inc-YYYYMMDD-<slug of title>` (the day of the id)."""
    day = incident_id.split("-")[1] if incident_id.count("-") >= 2 else ""
    return f"#inc-{day}-{slug(title)}"


def hours(d: timedelta) -> str:
    h = d.total_seconds() / 3600
    return f"{h:g} hours" if h >= 1 else span(d)


def span(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    if minutes and minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min" if minutes else f"{int(d.total_seconds())} s"


def group_alerts(s: GroupState) -> tuple[Alert, ...]:
    """The alerts an incident notification lists: audible firing first, then resolved."""
    states = sorted((st for st in s.alerts.values() if st.muted is None),
                    key=lambda st: (not st.firing, st.alert.starts_at, st.alert.key))
    return tuple(st.alert for st in states[:MAX_NOTE_ALERTS])


def base_details(inc: IncidentState) -> dict[str, Any]:
    v = inc.view
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
    for extra in ("eta", "comms_lead"):
        value = v.details.get(extra)
        if value:
            d[extra] = value
    if inc.update_due is not None and inc.open:  # the status page's "next update" clock too
        d["next_update"] = iso(from_ts(inc.update_due))
    return d


def note(s: GroupState, inc: IncidentState, kind: NotificationKind, receiver: str,
         dedup_key: str, cause: tuple[str, ...], now: Instant,
         details: dict[str, Any] | None = None,
         alerts: tuple[Alert, ...] | None = None) -> Notification:
    return Notification.build(
        id=stable_id(inc.view.id, *cause, kind.value, dedup_key, receiver),
        receiver=receiver,
        kind=kind,
        group_key=s.key,
        dedup_key=dedup_key,
        severity=inc.view.severity,
        title=inc.view.title,
        alerts=group_alerts(s) if alerts is None else alerts,
        incident_id=inc.view.id,
        created_at=now.dt,
        details={**base_details(inc), **(details or {})},
    )


def notes(s: GroupState, inc: IncidentState, kind: NotificationKind, receivers: Iterable[str],
          cause: tuple[str, ...], now: Instant,
          details: dict[str, Any] | None = None) -> list[Notification]:
    """One notification of the incident (its dedup key) per receiver."""
    who = names(receivers)
    alerts = group_alerts(s) if who else ()
    return [note(s, inc, kind, r, inc.dedup_key, cause, now, details, alerts) for r in who]


def public(out: list[Notification], ctx: EngineContext) -> list[Notification]:
    receiver = cfg(ctx).statuspage_receiver
    return [
        n.with_(details={k: v for k, v in n.details.items() if k not in _INTERNAL})
        if n.receiver == receiver else n
        for n in out
    ]


def page_key_notes(s: GroupState, inc: IncidentState, kind: NotificationKind,
                   cause: tuple[str, ...], now: Instant, ctx: EngineContext,
                   details: dict[str, Any] | None = None) -> list[Notification]:
    """Acknowledge / resolve every open page (each has its own vendor dedup key)."""
    who = names(cfg(ctx).page_receivers)
    alerts = group_alerts(s) if who and inc.page_keys else ()
    return [
        note(s, inc, kind, r, key, cause, now, details, alerts)
        for key in inc.page_keys for r in who
    ]


def tag(n: Notification, inc: IncidentState, **details: Any) -> Notification:
    """A group notification as part of the incident: its id, channel, status and dedup key."""
    extra = {**n.details, "incident_id": inc.view.id, "channel": inc.view.channel, **details}
    if n.kind is not K.RESOLVE:
        extra["status"] = inc.view.status.value
        if inc.update_due is not None and inc.open:  # the same clock as the incident's notes
            extra["next_update"] = iso(from_ts(inc.update_due))
    return n.with_(incident_id=inc.view.id, dedup_key=inc.dedup_key, details=extra)
