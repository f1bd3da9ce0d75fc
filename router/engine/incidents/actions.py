"""Post-mortem action items: first-class, with an owner, a due date and a status, and a
reminder to their owner once one is overdue. Pure. They live in the incident's details
(`action_items`), so the API, the console and the post-mortem draft read them from the view;
they can be added and closed after the incident is resolved (that is when post-mortems
happen), and the engine keeps the incident until its items are done or reminded."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from router.engine.incidents.formatting import ROUTER, K, list_of, notes
from router.engine.incidents.opening import Effects
from router.engine.incidents.timeline import TK, log, with_details
from router.engine.instant import Instant, to_ts
from router.engine.state import EngineContext, GroupState, IncidentState
from router.model import CommandEvent

STATUSES = ("open", "done")


def items(inc: IncidentState) -> list[dict[str, Any]]:
    return [dict(i) for i in list_of(inc.view.details.get("action_items")) if isinstance(i, dict)]


def _deadline(due: object) -> float | None:
    """An item due on a day is late once that day (UTC) has ended."""
    if not isinstance(due, str):
        return None
    try:
        day = date.fromisoformat(due)
    except ValueError:
        return None
    return to_ts(datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1))


def _armed(inc: IncidentState, now: Instant) -> IncidentState:
    """`actions_due`: the earliest deadline of an open item not reminded yet."""
    due = [d for i in items(inc) if i.get("status") == "open" and not i.get("reminded")
           if (d := _deadline(i.get("due"))) is not None]
    return inc.with_(actions_due=min(due) if due else None)


def add(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime, now: Instant,
        ctx: EngineContext) -> Effects:
    text = str(ev.args.get("text") or "").strip()
    if not text:
        return inc, []
    current = items(inc)
    due = ev.args.get("due")
    item = {"id": f"A{len(current) + 1}", "text": text[:500],
            "owner": str(ev.args["owner"]) if ev.args.get("owner") else None,
            "due": str(due) if due and _deadline(due) is not None else None,
            "status": "open", "by": ev.actor}
    inc = with_details(inc, action_items=[*current, item])
    who = f" ({item['owner']}" + (f", due {item['due']})" if item["due"] else ")") \
        if item["owner"] else (f" (due {item['due']})" if item["due"] else "")
    inc = log(inc, at, TK.ACTION_ITEM, ev.actor, f"action item {item['id']}: {text}{who}", now)
    return _armed(inc, now), []


def update(s: GroupState, inc: IncidentState, ev: CommandEvent, at: datetime, now: Instant,
           ctx: EngineContext) -> Effects:
    wanted, status = str(ev.args.get("id") or ""), str(ev.args.get("status") or "")
    current = items(inc)
    found = next((i for i in current if i.get("id") == wanted), None)
    if found is None or status not in STATUSES or found.get("status") == status:
        return inc, []
    found["status"] = status
    inc = with_details(inc, action_items=current)
    inc = log(inc, at, TK.ACTION_ITEM, ev.actor, f"action item {wanted} {status}", now)
    return _armed(inc, now), []


def remind(s: GroupState, inc: IncidentState, now: Instant,
           ctx: EngineContext) -> tuple[IncidentState, list[Any]]:
    """The overdue open items' owners hear it, once per item."""
    current = items(inc)
    out = []
    for i in current:
        late = _deadline(i.get("due"))
        if i.get("status") != "open" or i.get("reminded") or late is None or late > now.ts:
            continue
        i["reminded"] = True
        owner = i.get("owner") or "nobody"
        text = f"action item {i['id']} is overdue (due {i['due']}, owner {owner}): {i['text']}"
        out += notes(s, inc, K.REMINDER, inc.receivers, ("action", str(i["id"])), now,
                     {"reminder": "action_item", "owner": i.get("owner"), "item": i["id"],
                      "note": f"Reminder: {text}."})
        inc = log(with_details(inc, action_items=current), now.dt, TK.REMINDER, ROUTER, text,
                  now)
    return _armed(with_details(inc, action_items=current), now), out


def open_until(inc: IncidentState) -> float | None:
    """The last deadline of an open item: the engine keeps the incident at least that long."""
    due = [d for i in items(inc) if i.get("status") == "open"
           if (d := _deadline(i.get("due"))) is not None]
    return max(due) if due else None
