"""Resolving an incident, by a person or by its alerts: the one place that ends it. Pure.

Whoever resolves, every timer of the incident stops (escalation, SLAs), every open page is
resolved under its own dedup key, and each receiver hears one resolution: `told` names the
receivers that already carry it (the group's own resolution round), the rest get one here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from router.engine.incidents.formatting import K, cfg, hours, notes, page_key_notes, public
from router.engine.incidents.opening import statuspage_details
from router.engine.incidents.timeline import TK, log, with_details, with_view
from router.engine.instant import Instant, iso, to_ts, utc
from router.engine.state import EngineContext, GroupState, IncidentState
from router.incidents import IncidentStatus
from router.model import Notification


def resolution_details(inc: IncidentState, at: datetime, actor: str, message: str,
                       ctx: EngineContext) -> dict[str, Any]:
    due = cfg(ctx).postmortem_due
    return {
        "actor": actor,
        "resolved_at": iso(at),
        "resolution": message or None,
        "postmortem": (f"A post-mortem will be shared within {hours(due)} "
                       f"(by {at + due:%Y-%m-%d %H:%M} UTC)."),
        "postmortem_due_at": iso(at + due),
        **statuspage_details(inc),
    }


def forget_at(inc: IncidentState, now: Instant, ctx: EngineContext) -> float:
    """When the engine may drop a resolved incident whose reminders are done: kept at least
    through the reopen window (the view stays in the incident store)."""
    resolved = inc.view.resolved_at
    keep = now.ts + ctx.resolved_retention.total_seconds()
    if resolved is not None:
        keep = max(keep, to_ts(resolved) + cfg(ctx).reopen_window.total_seconds())
    return keep


def close(s: GroupState, inc: IncidentState, at: datetime, now: Instant, ctx: EngineContext,
          *, actor: str, text: str, message: str, cause: tuple[str, ...],
          told: Iterable[str] = ()) -> tuple[IncidentState, list[Notification], dict[str, Any]]:
    """`inc` resolved at `at`; the notifications that say so; the resolution's details (for
    the notifications in `told`, which the caller sends)."""
    c = cfg(ctx)
    at = utc(at)
    details = resolution_details(inc, at, actor, message, ctx)
    receivers = set(inc.receivers)
    if inc.on_statuspage and c.statuspage_receiver:
        receivers.add(c.statuspage_receiver)
    receivers.difference_update(told)
    pages = page_key_notes(s, inc, K.RESOLVE, cause, now, ctx, {"actor": actor})
    due = None if inc.view.postmortem_done else to_ts(at) + c.postmortem_due.total_seconds()
    # The commander hears when the deadline nears: a quarter of the time before, 12 h at most.
    soon = None if due is None else due - min(c.postmortem_due.total_seconds() / 4, 12 * 3600)
    inc = inc.with_(next_page=None, ack_due=None, resolve_due=None, page_keys=(),
                    postmortem_due=due, postmortem_soon=soon, update_due=None,
                    ack_expires=None, idle_due=None)
    inc = with_view(inc, status=IncidentStatus.RESOLVED, resolved_at=at, escalation_level=None)
    if message:
        inc = with_details(inc, resolution=message)
    inc = log(inc, at, TK.RESOLVED, actor, text, now)
    out = public(notes(s, inc, K.RESOLVE, receivers, cause, now, details), ctx)
    return inc, out + pages, details
