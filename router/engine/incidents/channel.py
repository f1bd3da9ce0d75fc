"""The incident's Slack channel, notes and the published post-mortem. Pure.

With `incidents.slack_channels`, an incident at or above `min_severity` gets a channel at
triage: one `TRIGGER` to the channel receiver under the dedup key `<incident id>:channel`
(`details.channel_op = "open"`) asks it to create the channel, invite the paged on-call people
and the commander, and post and pin the summary. Whenever what the summary shows changes
(status, severity, commander, acknowledgement, people paged, the latest update) an `UPDATE`
(`summary`) edits it and invites whoever is new. Resolution arms `archive_due`; then a
`RESOLVE` (`archive`) archives the channel, but not before the post-mortem is published or
marked done while its deadline is still ahead (a bot cannot unarchive a channel to post it).

The receiver keeps the Slack handles (channel id, summary ts) in its delivery records, as the
Slack thread and the Statuspage incident id are kept: a redelivery or a restart never creates
a second channel. `follow` runs after every engine step of a group, so it sees every change
whoever made it (alerts, commands, timers).
"""

from __future__ import annotations

import json
import re
from typing import Any

from router.config import SlackChannelsConfig
from router.engine.incidents.alerts import replace_incident
from router.engine.incidents.closing import forget_at
from router.engine.incidents.formatting import ROUTER, K, cfg, list_of, note, notes, public
from router.engine.incidents.opening import Effects
from router.engine.incidents.timeline import TK, log, with_details, with_view
from router.engine.instant import Instant, from_ts, iso, to_ts
from router.engine.state import EngineContext, GroupState, IncidentState
from router.model import CommandEvent, Notification, stable_id

OP = "channel_op"
# Slack section text is cut at 3,000 characters; a post-mortem goes out as message text.
POSTMORTEM_LIMIT = 39_000
NOTE_LIMIT = 2_000
_SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# After publishing, the channel stays this long before it is archived (the post goes first).
ARCHIVE_AFTER_PUBLISH = 60.0


def settings(ctx: EngineContext) -> SlackChannelsConfig | None:
    return ctx.incidents.slack_channels if ctx.incidents is not None else None


def channel_key(inc: IncidentState) -> str:
    return f"{inc.view.id}:channel"


def slack_user(name: str, users: dict[str, str]) -> str | None:
    """A person as the channel receiver invites them: a Slack user id or an e-mail address
    (looked up with users.lookupByEmail); None for a name with no mapping."""
    text = name.strip()
    if m := _MENTION.fullmatch(text):
        return m.group(1)
    bare = text.removeprefix("slack:").lstrip("@")
    mapped = users.get(bare)
    if mapped:
        return mapped
    return bare if _SLACK_ID.fullmatch(bare) or _EMAIL.fullmatch(bare) else None


def invitees(inc: IncidentState, c: SlackChannelsConfig) -> dict[str, str]:
    """Everyone paged for the incident, its commander and communications lead, in order:
    Slack user id or e-mail -> the name the router knows them by."""
    names: list[str] = []
    for p in list_of(inc.view.details.get("pages")):
        if isinstance(p, dict):
            names += [str(t) for t in list_of(p.get("targets"))]
    names += [str(n) for n in (inc.view.commander, inc.view.details.get("comms_lead")) if n]
    out: dict[str, str] = {}
    for n in names:
        user = slack_user(n, c.users)
        if user is not None and user not in out:
            out[user] = n
    return out


def people(inc: IncidentState, c: SlackChannelsConfig) -> list[str]:
    return list(invitees(inc, c))


def shown(inc: IncidentState, c: SlackChannelsConfig) -> dict[str, Any]:
    """What the pinned summary shows (besides the incident's base details)."""
    v = inc.view
    updates = list_of(v.details.get("updates"))
    latest = updates[-1].get("summary") if updates and isinstance(updates[-1], dict) else None
    return {
        "title": v.title, "severity": v.severity.value, "status": v.status.value,
        "commander": v.commander, "comms_lead": v.details.get("comms_lead"),
        "acknowledged_by": v.details.get("acknowledged_by") if v.acknowledged_at else None,
        "on_statuspage": inc.on_statuspage, "latest_update": latest,
        "postmortem_url": v.details.get("postmortem_url"),
        "postmortem_published": v.details.get("postmortem_published"), "invite": people(inc, c),
        # The next update's time moves with every reminder: the summary says the current one.
        "next_update": iso(from_ts(inc.update_due)) if inc.update_due and inc.open else None,
    }


def _note(s: GroupState, inc: IncidentState, kind: K, op: str, cause: tuple[str, ...],
          now: Instant, c: SlackChannelsConfig, **extra: Any) -> Notification:
    details = {OP: op, "channel_name": inc.view.channel.lstrip("#"), **shown(inc, c), **extra}
    return note(s, inc, kind, c.receiver, channel_key(inc), cause, now, details)


def follow(before: GroupState | None, after: GroupState | None, out: list[Notification],
           now: Instant, ctx: EngineContext) -> tuple[GroupState | None, list[Notification]]:
    """After a step of the group: open, update, archive the channels of its incidents."""
    c = settings(ctx)
    if c is None or (after is None and before is None):
        return after, out
    prior = {x.view.id: x for x in before.incidents} if before is not None else {}
    out = list(out)
    s = after
    if s is not None:
        for inc in s.incidents:
            new, more = _one(s, prior.get(inc.view.id), inc, now, c)
            if new is not inc:
                s = replace_incident(s, new)
            out += more
    kept = {x.view.id for x in s.incidents} if s is not None else set()
    group = s if s is not None else before
    assert group is not None
    for old in prior.values():  # forgotten by the engine with its channel still open
        if old.view.id not in kept and old.channel_open and not old.channel_archived:
            out.append(_note(group, old, K.RESOLVE, "archive", ("channel", "archive"), now, c))
    return s, out


def _one(s: GroupState, old: IncidentState | None, inc: IncidentState, now: Instant,
         c: SlackChannelsConfig) -> Effects:
    if not inc.channel_open:
        if inc.open and inc.view.severity.at_least(c.min_severity):
            return _open(s, inc, now, c)
        return inc, []
    if inc.channel_archived:
        return inc, []
    out: list[Notification] = []
    if not inc.open and inc.archive_due is None and (old is None or old.open):
        resolved = inc.view.resolved_at
        since = to_ts(resolved) if resolved is not None else now.ts
        inc = inc.with_(archive_due=since + c.archive_after.total_seconds())
    elif inc.open and inc.archive_due is not None:  # reopened
        inc = inc.with_(archive_due=None)
    if old is not None and old.channel_open and shown(old, c) != shown(inc, c):
        fingerprint = stable_id(json.dumps(shown(inc, c), sort_keys=True, default=str))
        out.append(_note(s, inc, K.UPDATE, "summary",
                         ("channel", "summary", fingerprint, str(int(now.ts))), now, c))
        invited = tuple(dict.fromkeys([*inc.invited, *people(inc, c)]))
        if invited != inc.invited:
            inc = inc.with_(invited=invited)
    if inc.archive_due is not None and inc.archive_due <= now.ts:
        inc, more = _archive(s, inc, now, c)
        out += more
    return inc, out


def _open(s: GroupState, inc: IncidentState, now: Instant, c: SlackChannelsConfig) -> Effects:
    who = invitees(inc, c)  # the timeline names people, not their e-mail addresses
    inc = inc.with_(channel_open=True, invited=tuple(who))
    text = f"incident channel {inc.view.channel} requested" + (
        f", inviting {', '.join(who.values())}" if who else "")
    inc = log(inc, now.dt, TK.NOTIFIED, ROUTER, text, now)
    return inc, [_note(s, inc, K.TRIGGER, "open", ("channel", "open"), now, c,
                       private=c.private)]


def _archive(s: GroupState, inc: IncidentState, now: Instant,
             c: SlackChannelsConfig) -> Effects:
    waiting = not inc.view.postmortem_done and not inc.view.details.get("postmortem_published")
    if waiting and inc.postmortem_due is not None and inc.postmortem_due > now.ts:
        return inc.with_(archive_due=inc.postmortem_due), []
    inc = inc.with_(archive_due=None, channel_archived=True)
    inc = log(inc, now.dt, TK.NOTIFIED, ROUTER, f"incident channel {inc.view.channel} archived",
              now)
    return inc, [_note(s, inc, K.RESOLVE, "archive", ("channel", "archive"), now, c)]


# --- commands ------------------------------------------------------------------------------


def add_note(s: GroupState, inc: IncidentState, ev: CommandEvent, at: Any, now: Instant,
             ctx: EngineContext) -> Effects:
    """A timeline note (`/incident note`, or a channel message marked with the note emoji:
    `ts` names it, and marking it twice, or Slack retrying the event, adds it once)."""
    text = str(ev.args.get("text") or "").strip()[:NOTE_LIMIT]
    ts = str(ev.args.get("ts") or "")
    seen = [str(x) for x in list_of(inc.view.details.get("noted"))]
    if not text or (ts and ts in seen):
        return inc, []
    if ts:
        inc = with_details(inc, noted=[*seen, ts][-500:])
    return log(inc, at, TK.NOTE, ev.actor, text, now), []


def publish(s: GroupState, inc: IncidentState, ev: CommandEvent, at: Any, now: Instant,
            ctx: EngineContext) -> Effects:
    """The post-mortem (`text`) to the incident channel and its public version
    (`public_text`) to the Statuspage incident's post-mortem; once (a second publish changes
    nothing), and only after resolution."""
    text = str(ev.args.get("text") or "").strip()
    if inc.open or inc.view.details.get("postmortem_published") or not text:
        return inc, []
    out: list[Notification] = []
    where: list[str] = []
    c = settings(ctx)
    if c is not None and inc.channel_open and not inc.channel_archived:
        out.append(_note(s, inc, K.UPDATE, "postmortem", ("channel", "postmortem"), now, c,
                         postmortem_text=text[:POSTMORTEM_LIMIT]))
        where.append(f"channel {inc.view.channel}")
        resolved = inc.view.resolved_at
        if inc.archive_due is not None and resolved is not None:  # no longer waiting for it
            inc = inc.with_(archive_due=max(to_ts(resolved) + c.archive_after.total_seconds(),
                                            now.ts + ARCHIVE_AFTER_PUBLISH))
    receiver = cfg(ctx).statuspage_receiver
    if inc.on_statuspage and receiver is not None:
        shared = str(ev.args.get("public_text") or text)  # the public version, no people
        out += public(notes(s, inc, K.UPDATE, [receiver], ("postmortem",), now,
                            {"postmortem_text": shared}), ctx)
        where.append("status page")
    inc = with_view(inc, postmortem_done=True)
    inc = with_details(inc, postmortem_published=iso(now.dt), postmortem_published_by=ev.actor)
    inc = inc.with_(postmortem_due=None, postmortem_soon=None, forget_at=forget_at(inc, now, ctx))
    said = ", ".join(where) if where else "no incident channel or status page to post it to"
    return log(inc, at, TK.POSTMORTEM, ev.actor, f"post-mortem published ({said})", now), out
