"""`Engine`: the in-memory store of group states around the pure `decide`, for one owner.

Backends feed it batches of log events (`apply`) and wake it for timers (`tick`); each call
returns a `Batch` of changed states and notifications that the backend commits atomically with
the consumed log position (SQLite transaction, or Kafka transaction with the changelog).

Memory: states are held as their compact `to_bytes()` form (the same bytes the changelog
stores; optionally zlib-compressed in memory), plus a small LRU of decoded states for hot
groups, so a million single-alert groups cost about the size of their JSON each rather than a
pydantic object graph (several KiB).
"""

from __future__ import annotations

import heapq
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from router.engine.decide import Event, decide, rearm
from router.engine.lifecycle import command_target
from router.engine.state import (
    IDS_KEY,
    INCIDENT_TIMERS,
    EngineContext,
    GroupState,
    IncidentIds,
    Tick,
    from_ts,
    group_key_of,
    to_ts,
)
from router.incidents import Incident
from router.model import AlertEvent, CommandEvent, Notification, NotificationKind

_TIMERS = ("w", "u", "r", "f", "x")


@dataclass(frozen=True, slots=True)
class Batch:
    """What one `apply`/`tick` decided: commit all of it atomically, or none of it."""

    # New state per group key touched; None means delete (changelog tombstone / SQL DELETE).
    changed: dict[str, GroupState | None] = field(default_factory=dict)
    # The same keys, already serialised with `GroupState.to_bytes()` (None = delete), plus
    # `state.IDS_KEY` (the incident id counter) when it moved: store it like a group.
    encoded: dict[str, bytes | None] = field(default_factory=dict)
    notifications: list[Notification] = field(default_factory=list)
    duplicates: int = 0  # events suppressed as duplicates
    stale: int = 0  # events dropped as older than what the alert already had
    notified: dict[NotificationKind, int] = field(default_factory=dict)  # per notification
    flapping: int = 0  # groups that started flapping
    # Incident views that changed, by incident id: write them to the incident view.
    incidents: dict[str, Incident] = field(default_factory=dict)
    # SLA breaches by (severity, sla) with sla "ack" | "resolve", once per incident and SLA.
    sla_breaches: dict[tuple[str, str], int] = field(default_factory=dict)
    unknown_commands: int = 0  # commands for an incident not known here (ignored)

    @property
    def empty(self) -> bool:
        return not self.encoded and not self.notifications and not self.unknown_commands

    def merge(self, later: Batch) -> Batch:
        """One batch with the effects of self then `later` (for one combined commit)."""
        changed = {**self.changed, **later.changed}
        encoded = {**self.encoded, **later.encoded}
        notified = dict(self.notified)
        for kind, n in later.notified.items():
            notified[kind] = notified.get(kind, 0) + n
        breaches = dict(self.sla_breaches)
        for key, n in later.sla_breaches.items():
            breaches[key] = breaches.get(key, 0) + n
        return Batch(
            changed=changed,
            encoded=encoded,
            notifications=[*self.notifications, *later.notifications],
            duplicates=self.duplicates + later.duplicates,
            stale=self.stale + later.stale,
            notified=notified,
            flapping=self.flapping + later.flapping,
            incidents={**self.incidents, **later.incidents},
            sla_breaches=breaches,
            unknown_commands=self.unknown_commands + later.unknown_commands,
        )


def event_group_key(event: Event) -> str | None:
    """The group an event belongs to (None: a command without a group key)."""
    if isinstance(event, AlertEvent):
        return group_key_of(event.alert)
    if isinstance(event, Tick):
        return event.group_key
    return event.group_key or None


def _deadline_of_bytes(data: bytes) -> float | None:
    # Cheaper than a full model validation when restoring many states.
    raw = orjson.loads(data)
    if not isinstance(raw, dict):
        raise ValueError("a group state must be a JSON object")
    values = [raw[k] for k in _TIMERS if raw.get(k) is not None]
    for inc in raw.get("i") or ():
        values.extend(inc[k] for k in INCIDENT_TIMERS if inc.get(k) is not None)
    return min(values) if values else None


class Engine:
    """Single writer of the group states it owns."""

    def __init__(
        self,
        context: EngineContext | None = None,
        *,
        hot_alerts: int = 10_000,
        compress_level: int = 0,
        ids: IncidentIds | None = None,
    ) -> None:
        """`hot_alerts` bounds the decoded-state LRU (in alerts, since big groups are the ones
        worth keeping decoded); `compress_level` 1-9 zlib-compresses states held in memory
        (about half the memory for a few tens of microseconds per write), 0 keeps plain JSON.
        `ids` numbers incidents (see `IncidentIds`; Kafka passes the partition's stride).
        """
        self.context = context if context is not None else EngineContext()
        self.ids = ids if ids is not None else IncidentIds()
        self._hot_budget = max(1, hot_alerts)
        self._hot_size = 0
        self._level = compress_level
        self._raw: dict[str, bytes] = {}
        self._hot: OrderedDict[str, tuple[GroupState, int]] = OrderedDict()
        self._deadline: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    # --- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def keys(self) -> Iterator[str]:
        return iter(list(self._raw))

    def get(self, key: str) -> GroupState | None:
        hot = self._hot.get(key)
        if hot is not None:
            self._hot.move_to_end(key)
            return hot[0]
        data = self.encoded(key)
        if data is None:
            return None
        state = GroupState.from_bytes(data)
        self._remember(key, state)
        return state

    def encoded(self, key: str) -> bytes | None:
        """The `to_bytes()` of one group (what the changelog / SQLite row holds)."""
        data = self._raw.get(key)
        if data is not None and data[:1] != b"{":
            return zlib.decompress(data)
        return data

    def _hold(self, key: str, data: bytes) -> None:
        self._raw[key] = zlib.compress(data, self._level) if self._level else data

    def next_deadline(self) -> datetime | None:
        """When `tick` next has something to do; None when no timer is armed."""
        heap = self._heap
        while heap and self._deadline.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # superseded entry
        return from_ts(heap[0][0]) if heap else None

    # --- ownership ----------------------------------------------------------------------------

    def load(self, key: str, state: GroupState | bytes | None) -> None:
        """Restore one group (changelog / SQLite replay); None deletes (a tombstone)."""
        if key == IDS_KEY:
            self.ids.load(None if isinstance(state, GroupState) else state)
            return
        if state is None:
            self.drop([key])
            return
        if isinstance(state, GroupState):
            data = state.to_bytes()
            deadline = state.next_deadline()
        else:
            data = bytes(state)
            deadline = _deadline_of_bytes(data)
        self._hold(key, data)
        self._forget_hot(key)
        self._arm(key, deadline)

    def clear(self) -> None:
        """Forget everything, the incident counter included (before a full restore)."""
        self.drop(list(self._raw))
        self.ids.load(None)

    def drop(self, keys: Iterable[str]) -> None:
        """Forget groups (partitions revoked); their heap entries die lazily."""
        for key in keys:
            if key == IDS_KEY:
                self.ids.load(None)
                continue
            self._raw.pop(key, None)
            self._forget_hot(key)
            self._deadline.pop(key, None)

    # --- deciding -----------------------------------------------------------------------------

    def apply(self, events: Sequence[Event], now: datetime) -> Batch:
        """Decide a batch of events at engine time `now`, then fire every timer due by `now`.

        Updates and resolutions are sent by timers, so firing them after the whole batch has
        been applied makes one notification of all its changes. Commands are ignored for now.
        """
        run = _Run(self, now)
        ids_before = self.ids.snapshot()
        for event in events:
            key = event_group_key(event)
            if key is not None:
                run.decide(key, event)
            else:
                run.unknown_commands += 1
        for key in run.touched:
            state = run.work.get(key)
            if state is not None:
                run.work[key] = rearm(state, now, self.context)
        now_ts = to_ts(now)
        due: dict[str, None] = dict.fromkeys(self._pop_due(now_ts))
        for key, state in run.work.items():
            deadline = state.next_deadline() if state is not None else None
            if deadline is not None and deadline <= now_ts:
                due[key] = None
        for key in due:
            run.decide(key, Tick(group_key=key))
        changed, encoded = self._store(run.before, run.work)
        if self.ids.snapshot() != ids_before:
            encoded[IDS_KEY] = self.ids.to_bytes()
        notified: dict[NotificationKind, int] = {}
        breaches: dict[tuple[str, str], int] = {}
        seen: set[tuple[str | None, str]] = set()
        for note in run.notes:
            notified[note.kind] = notified.get(note.kind, 0) + 1
            if note.kind is NotificationKind.SLA_BREACH:
                sla = str(note.details.get("sla", ""))
                if (note.incident_id, sla) not in seen:  # one per breach, not per receiver
                    seen.add((note.incident_id, sla))
                    bucket = (note.severity.value, sla)
                    breaches[bucket] = breaches.get(bucket, 0) + 1
        return Batch(
            changed=changed,
            encoded=encoded,
            notifications=run.notes,
            duplicates=run.duplicates,
            stale=run.stale,
            notified=notified,
            flapping=run.flapping,
            incidents=run.views,
            sla_breaches=breaches,
            unknown_commands=run.unknown_commands,
        )

    def tick(self, now: datetime) -> Batch:
        """Fire every timer due at `now` (group_wait, group_interval, repeat, flap, expiry)."""
        return self.apply((), now)

    # --- internals ----------------------------------------------------------------------------

    def _pop_due(self, now_ts: float) -> Iterator[str]:
        heap = self._heap
        while heap and heap[0][0] <= now_ts:
            deadline, key = heapq.heappop(heap)
            if self._deadline.get(key) == deadline:
                del self._deadline[key]  # re-armed from the new state by _store
                yield key

    def _store(
        self, before: dict[str, GroupState | None], work: dict[str, GroupState | None]
    ) -> tuple[dict[str, GroupState | None], dict[str, bytes | None]]:
        changed: dict[str, GroupState | None] = {}
        encoded: dict[str, bytes | None] = {}
        for key, new in work.items():
            old = before[key]
            if new is None:
                if old is not None:
                    self.drop([key])
                    changed[key] = encoded[key] = None
                continue
            if new is not old:
                data = new.to_bytes()
                if old is None or data != self.encoded(key):
                    self._hold(key, data)
                    changed[key] = new
                    encoded[key] = data
                self._remember(key, new)
            self._arm(key, new.next_deadline())
        if len(self._heap) > 2 * len(self._deadline) + 1024:
            self._heap = [(d, k) for k, d in self._deadline.items()]
            heapq.heapify(self._heap)
        return changed, encoded

    def _arm(self, key: str, deadline: float | None) -> None:
        if deadline is None:
            self._deadline.pop(key, None)
        elif self._deadline.get(key) != deadline:
            self._deadline[key] = deadline
            heapq.heappush(self._heap, (deadline, key))

    def _remember(self, key: str, state: GroupState) -> None:
        self._forget_hot(key)
        size = len(state.a) + 1
        self._hot[key] = (state, size)
        self._hot_size += size
        while self._hot_size > self._hot_budget and len(self._hot) > 1:
            _, (_, evicted) = self._hot.popitem(last=False)
            self._hot_size -= evicted

    def _forget_hot(self, key: str) -> None:
        hot = self._hot.pop(key, None)
        if hot is not None:
            self._hot_size -= hot[1]


class _Run:
    """The working set of one `apply`: states as decided so far, and what was emitted."""

    def __init__(self, engine: Engine, now: datetime) -> None:
        self.engine = engine
        self.now = now
        self.before: dict[str, GroupState | None] = {}
        self.work: dict[str, GroupState | None] = {}
        self.notes: list[Notification] = []
        self.views: dict[str, Incident] = {}
        self.duplicates = self.stale = self.flapping = self.unknown_commands = 0
        # Groups changed by alert events: re-armed once after the batch (decide.rearm).
        self.touched: dict[str, None] = {}

    def decide(self, key: str, event: Event) -> None:
        if key in self.work:
            state = self.work[key]
        else:
            state = self.engine.get(key)
            self.before[key] = state
        context = self.engine.context
        if isinstance(event, CommandEvent) and command_target(state, event, context) is None:
            self.unknown_commands += 1
            return
        # Alert events only arm timers; the Tick after the batch sends what is due.
        if not isinstance(event, AlertEvent) and key in self.touched:
            # A command or Tick after alert events of this batch sees their timers armed.
            del self.touched[key]
            if state is not None:
                state = rearm(state, self.now, context)
        new, emitted = decide(state, event, self.now, context, flush=False, ids=self.engine.ids)
        if isinstance(event, AlertEvent):
            self.touched[key] = None
        self.work[key] = new
        self.notes.extend(emitted)
        old_incidents = state.i if state is not None else ()
        new_incidents = new.i if new is not None else ()
        if old_incidents or new_incidents:
            olds = {x.v.id: x.v for x in old_incidents}
            for x in new_incidents:
                if olds.get(x.v.id) != x.v:
                    self.views[x.v.id] = x.v
        if new is not None:
            self.duplicates += new.d - (state.d if state is not None else 0)
            self.stale += new.o - (state.o if state is not None else 0)
            was = state.flapping if state is not None else False
            if new.flapping and not was:
                self.flapping += 1
