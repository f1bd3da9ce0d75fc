"""The daily digest in the engine. Pure.

Group notifications of a severity with `route: digest` (SEV4, "next sprint") are taken out of
what the engine sends and collected here, one entry per group (latest title, status, alerts);
the first one arms the digest's timer for the next `digest.at` (`router.noise.digest`), and
when it is due one summary per digest receiver goes out and the digest empties. The digest is
engine state stored beside the groups under DIGEST_KEY (committed with them, restored with
them), and its deadline is an engine timer on the injected clock, so a digest due while the
router was down goes out when it is back.

On Kafka every partition has an engine, and the digest is one a day for the cluster: each
engine sends the entries it collects as a `digest_items` command under DIGEST_KEY (appended to
the alerts log after its commit, so to the one partition that owns that key), and that
partition's engine holds the digest and its timer (`received`), whoever owns it after a
restart or rebalance. An entry merges by group key, so receiving one twice changes nothing:
each engine keeps what it sent until the digest it was for is due (`outgoing`) and sends it
again once after a restore, which covers a command lost to a crash or a stop between the
commit and the append.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from router.engine.instant import Instant, iso
from router.engine.state import EngineContext
from router.model import (
    CommandEvent,
    Notification,
    NotificationKind,
    Severity,
    Status,
    stable_id,
)
from router.noise.digest import next_send

DIGEST_KEY = "\x00digest"  # where it is stored beside the groups (a group key never has NUL)
DIGEST_GROUP = "router:digest"  # the group key its summaries carry (threads, dedup)
K = NotificationKind
COLLECTED = frozenset({K.TRIGGER, K.UPDATE, K.REPEAT, K.RESOLVE})  # a group's own rounds
ITEMS = "digest_items"  # args: {"entries": {group key: entry}}: for the digest's engine


@dataclass(frozen=True, slots=True)
class Digest:
    entries: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # by group key
    due: float | None = None  # when the summary goes out (engine time)
    # Sent to the digest's engine (`forwarded`), kept until the digest they are for is due.
    outgoing: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    outgoing_until: float | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps({"entries": self.entries, "due": self.due,
                             **({"outgoing": self.outgoing, "outgoing_until": self.outgoing_until}
                                if self.outgoing else {})})

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | None) -> Digest:
        if data is None:
            return cls()
        raw = orjson.loads(bytes(data))
        return cls(entries={str(k): dict(v) for k, v in (raw.get("entries") or {}).items()},
                   due=raw.get("due"),
                   outgoing={str(k): dict(v) for k, v in (raw.get("outgoing") or {}).items()},
                   outgoing_until=raw.get("outgoing_until"))


def routed(n: Notification, ctx: EngineContext) -> bool:
    """Does `n` go into the digest rather than out (a group round of a digest severity)?"""
    return n.kind in COLLECTED and ctx.policy(n.severity).route == "digest"


def split(notes: list[Notification], now: Instant, ctx: EngineContext
          ) -> tuple[dict[str, Mapping[str, Any]], list[Notification]]:
    """The digest entries of the routed notifications of `notes` (by group key), and the
    others."""
    kept: list[Notification] = []
    entries: dict[str, Mapping[str, Any]] = {}
    for n in notes:
        if not routed(n, ctx):
            kept.append(n)
            continue
        firing = [a for a in n.alerts if a.status is Status.FIRING]
        entries[n.group_key] = {
            "title": n.title,
            "severity": n.severity.value,
            "status": "resolved" if n.kind is K.RESOLVE else "firing",
            "alerts": sorted({a.name for a in (firing or n.alerts)}),
            "service": next((a.service for a in n.alerts if a.service), None),
            "first": iso(now.dt),
            "last": iso(now.dt),
            "runbook_url": next((a.runbook_url for a in n.alerts if a.runbook_url), None),
        }
    return entries, kept if entries else notes


def added(digest: Digest, entries: Mapping[str, Mapping[str, Any]], now: Instant,
          ctx: EngineContext) -> Digest:
    """The digest with `entries` in (a group's first sighting kept), its timer armed."""
    if not entries:
        return digest
    merged = dict(digest.entries)
    for key, entry in entries.items():
        old = merged.get(key)
        merged[key] = entry if old is None else {**entry, "first": old["first"]}
    due = digest.due if digest.due is not None else next_send(ctx.digest, now.dt).timestamp()
    return replace(digest, entries=merged, due=due)


def collect(digest: Digest, notes: list[Notification], now: Instant, ctx: EngineContext
            ) -> tuple[Digest, list[Notification]]:
    """The digest with the routed notifications of `notes` in, and the others."""
    entries, kept = split(notes, now, ctx)
    return added(digest, entries, now, ctx), kept


def forwarded(digest: Digest, entries: Mapping[str, Mapping[str, Any]], now: Instant,
              ctx: EngineContext, *, again: bool = False) -> tuple[Digest, CommandEvent | None]:
    """An engine that is not the digest's: the command carrying `entries` to the digest's
    engine (with everything it sent for the coming digest when `again`, after a restore), and
    the digest keeping them as `outgoing` until that digest is due."""
    outgoing, until = digest.outgoing, digest.outgoing_until
    if not entries and not again and (until is None or until > now.ts):
        return digest, None  # nothing to send, nothing to forget
    if until is not None and until <= now.ts:
        outgoing, until = {}, None  # the digest they were for is out
    send = {**outgoing, **entries} if again else dict(entries)
    if entries:
        outgoing = {**outgoing, **entries}
        until = until if until is not None else next_send(ctx.digest, now.dt).timestamp()
    kept = replace(digest, outgoing=outgoing, outgoing_until=until)
    if not send:
        return kept, None
    return kept, CommandEvent.build(kind="command", command=ITEMS, group_key=DIGEST_KEY,
                                    actor="router", at=now.dt, args={"entries": send})


def received(digest: Digest, event: CommandEvent, now: Instant, ctx: EngineContext) -> Digest:
    """The digest's engine: the digest with an `items` command's entries in."""
    if event.command != ITEMS:
        return digest
    raw = event.args.get("entries") or {}
    return added(digest, {str(k): dict(v) for k, v in dict(raw).items()}, now, ctx)


def send(digest: Digest, now: Instant, ctx: EngineContext) -> tuple[Digest, list[Notification]]:
    """The summaries when the digest is due (then it empties), else nothing."""
    if digest.due is None or digest.due > now.ts:
        return digest, []
    if not digest.entries:
        return replace(digest, entries={}, due=None), []
    when = datetime.fromtimestamp(digest.due, UTC)
    rows = sorted(digest.entries.values(), key=lambda e: (e["severity"], str(e["first"])))
    firing = sum(1 for e in rows if e["status"] == "firing")
    lines = [f"- [{e['severity']}] {e['title']}: {e['status']} (since {e['first']})"
             for e in rows]
    title = (f"Daily digest: {len(rows)} alert group{'s' if len(rows) != 1 else ''}, "
             f"{firing} still firing")
    severity = min((Severity(str(e["severity"])) for e in rows), key=lambda s: s.rank)
    dedup = stable_id(DIGEST_GROUP, str(digest.due))
    details = {"digest": [dict(e) for e in rows], "digest_at": when.isoformat(),
               "update_label": "Daily digest", "status": "digest", "note": "\n".join(lines),
               "next_update": "in the next digest", "reasons": ["digest"]}
    notes = [
        Notification.build(
            id=stable_id(DIGEST_GROUP, str(digest.due), receiver), receiver=receiver,
            kind=K.UPDATE, group_key=DIGEST_GROUP, dedup_key=dedup, severity=severity,
            title=title, created_at=now.dt, details=dict(details))
        for receiver in sorted(set(ctx.digest.receivers))
    ]
    return replace(digest, entries={}, due=None), notes
