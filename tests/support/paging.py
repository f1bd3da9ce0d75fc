"""The paging promise as invariants over what a router emitted: checked after every step of the
model-based tests, on the pure engine and on both backends.

- Nothing pages for an incident after it is resolved (only its resolution and the post-mortem
  reminder follow), and no escalation follows an acknowledgement.
- Each receiver hears at most one resolution per incident and dedup key, and exactly one once
  the incident is resolved; every page raised under that key is resolved too.
- An incident whose group has nothing firing and nothing pending is resolved (auto_resolve).
- Timelines are sorted by the time things happened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from router.engine.state import FLAP_NONE, GroupState
from router.incidents import Incident
from router.model import Notification, NotificationKind

K = NotificationKind
AFTER_RESOLVED = {K.RESOLVE, K.REMINDER}


def step_problems(emitted: Sequence[Notification], views: Iterable[Incident],
                  groups: Mapping[str, GroupState | None] | None = None) -> list[str]:
    """What one step emitted, against the incidents (and, when known, the groups) as they
    stand after it. A group notification without an incident id counts for the group's latest
    incident: a reminder of an alert whose incident a person resolved is a page too."""
    problems: list[str] = []
    views = list(views)
    by_id = {v.id: v for v in views}
    latest: dict[str, Incident] = {}
    for v in sorted(views, key=lambda v: v.opened_at):
        latest[v.group_key] = v
    for n in emitted:
        view = by_id.get(n.incident_id or "") or latest.get(n.group_key)
        if view is None:
            continue
        if view.resolved_at is not None and n.kind not in AFTER_RESOLVED:
            problems.append(f"{n.kind.value} to {n.receiver} for resolved {view.id}")
        escalation = n.kind in (K.ESCALATE, K.SLA_BREACH) or (
            n.kind is K.PAGE and n.details.get("level") is not None)
        acked = view.acknowledged_at is not None and view.resolved_at is None
        if acked and n.kind is not K.SLA_BREACH and escalation:
            problems.append(f"escalation {n.kind.value} to {n.receiver} for acked {view.id}")
        group = (groups or {}).get(n.group_key)
        over = (group is not None and not group.firing and group.flap == FLAP_NONE
                and view.resolved_at is None and not view.group_key.startswith("manual:"))
        if over and escalation:
            problems.append(f"{n.kind.value} to {n.receiver} for {view.id} whose alerts are "
                            "all resolved")
    return problems


def history_problems(history: Sequence[Notification], views: Iterable[Incident],
                     page_receivers: Iterable[str]) -> list[str]:
    """Over everything emitted so far: resolutions once per receiver and dedup key, and each
    resolved incident's receivers and pages resolved."""
    problems: list[str] = []
    resolutions = Counter((n.incident_id, n.dedup_key, n.receiver)
                          for n in history if n.kind is K.RESOLVE)
    problems += [f"{r} resolved {i} ({d[:8]}) {c} times"
                 for (i, d, r), c in resolutions.items() if c > 1]
    pagers = set(page_receivers)
    for view in views:
        if view.resolved_at is None:
            continue
        key = str(view.details.get("dedup_key", ""))
        listed = view.details.get("receivers")
        receivers = [str(r) for r in listed] if isinstance(listed, list) else []
        for r in receivers:
            if resolutions[(view.id, key, r)] != 1:
                problems.append(f"{r} did not hear {view.id} resolved")
        for n in history:
            if (n.kind is K.PAGE and n.incident_id == view.id
                    and n.dedup_key.startswith(key + ":") and n.receiver in pagers
                    and resolutions[(view.id, n.dedup_key, n.receiver)] != 1):
                problems.append(f"page {n.dedup_key[-8:]} of {view.id} never resolved")
    return problems


def state_problems(states: Iterable[GroupState], auto_resolve: bool = True) -> list[str]:
    problems: list[str] = []
    for s in states:
        for inc in s.incidents:
            times = [e.at for e in inc.view.timeline]
            if times != sorted(times):
                problems.append(f"timeline of {inc.view.id} out of order")
        inc = s.incident
        quiet = (not s.firing and s.flap == FLAP_NONE and s.wait_until is None
                 and s.update_at is None)
        if auto_resolve and inc is not None and not inc.declared and quiet:
            problems.append(f"{inc.view.id}: every alert resolved, still {inc.view.status}")
    return problems


def sorted_problems(views: Iterable[Incident]) -> list[str]:
    return [f"timeline of {v.id} out of order" for v in views
            if [e.at for e in v.timeline] != sorted(e.at for e in v.timeline)]
