"""`Engine`: the in-memory store of group states around the pure `decide`, for one owner.

Backends feed it batches of log events (`apply`) and wake it for timers (`tick`); each call
returns a `Batch` of changed states and notifications that the backend commits atomically with
the consumed log position (SQLite transaction, or Kafka transaction with the changelog).

Memory: states are held in their stored form (`codec.pack`: the compact `to_bytes()` JSON
behind a header with the group's next deadline, optionally deflated; the same bytes the
changelog stores), plus a small LRU of decoded states for hot groups, so a million single-alert
groups cost about the size of their JSON each rather than a pydantic object graph (several
KiB). Timers are buckets of group keys by deadline (a batch arms its groups at the same
times), checked against the deadline in the held header when they fire, so an armed group
costs a list slot rather than a heap entry and a dict entry.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from router.engine import deferred, digest
from router.engine.codec import (
    frame,
    gone_of,
    gone_section,
    pack_as,
    packed_deadline,
    unpack,
)
from router.engine.decide import Event, decide, is_duplicate, rearm
from router.engine.digest import DIGEST_KEY, Digest
from router.engine.ids import IDS_KEY, IncidentIds
from router.engine.incidents import command_target, inhibit
from router.engine.incidents.record import (
    full_view,
    hot_view,
    ident_of,
    pending,
    read_record,
    record_of,
    record_writes,
)
from router.engine.instant import Instant, from_ts, to_ts, utc
from router.engine.labels import LabelIndex, changed_silences, indexable
from router.engine.noise import INHIBITORS_KEY, NOISE_KEY, Noise, incident_commands
from router.engine.quiet import Quiet
from router.engine.state import (
    RECORD_PREFIX,
    EngineContext,
    GroupState,
    IncidentRecord,
    IncidentState,
    Tick,
    group_key_of,
)
from router.incidents import Incident
from router.model import (
    AlertEvent,
    AlertsEvent,
    CommandEvent,
    Notification,
    NotificationKind,
    Severity,
)
from router.noise.heartbeats import HEARTBEAT
from router.noise.silences import Silence


@dataclass(frozen=True, slots=True)
class Batch:
    """What one `apply`/`tick` decided: commit all of it atomically, or none of it."""

    # New state per group key touched; None means delete (changelog tombstone / SQL DELETE).
    changed: dict[str, GroupState | None] = field(default_factory=dict)
    # The same keys in their stored form, `codec.pack` (None = delete), plus
    # `ids.IDS_KEY` (the incident id counter) when it moved: store it like a group.
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
    quieted: dict[str, int] = field(default_factory=dict)  # alerts that became quiet, by reason
    # Commands for other engines (noise broadcasts, timeline notes for groups held elsewhere):
    # a backend with several engines appends them to its log.
    commands: list[CommandEvent] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return (not self.encoded and not self.notifications and not self.unknown_commands
                and not self.commands)

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
        quieted = dict(self.quieted)
        for reason, n in later.quieted.items():
            quieted[reason] = quieted.get(reason, 0) + n
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
            quieted=quieted,
            commands=[*self.commands, *later.commands],
        )


def event_group_key(event: Event | AlertsEvent) -> str | None:
    """The group an event belongs to (None: a command without a group key)."""
    if isinstance(event, AlertEvent):
        return group_key_of(event.alert)
    if isinstance(event, AlertsEvent):
        return group_key_of(event.alerts[0])
    if isinstance(event, Tick):
        return event.group_key
    return event.group_key or None


class Engine:
    """Single writer of the group states it owns."""

    def __init__(
        self,
        context: EngineContext | None = None,
        *,
        hot_alerts: int = 10_000,
        hot_groups: int = 2048,
        compress_level: int = 1,
        ids: IncidentIds | None = None,
        digest_via_log: bool = False,
    ) -> None:
        """`hot_alerts` bounds the decoded-state LRU (in alerts, since big groups are the ones
        worth keeping decoded), `hot_groups` its number of groups (every decoded state is a few
        dozen objects the garbage collector walks, and a small group decodes quickly).
        `compress_level` 1-9 deflates the stored form (`codec.pack`: about a third of the
        memory and changelog bytes, for ~10-30 us per write), 0 keeps the JSON plain. Level 1
        by default: under 0.5 KiB of RSS per active alert instead of ~1 KiB, for ~3% of the
        CPU an alert costs end to end.
        `ids` numbers incidents (see `IncidentIds`; Kafka passes the partition's stride).
        `digest_via_log`: the digest's entries go out as commands (`Batch.commands`) to the
        engine that holds the digest (Kafka: one digest for all partitions,
        `router.engine.digest`).
        """
        self._digest_via_log = digest_via_log
        self._digest_again = False  # restored: send the outgoing digest entries once more
        self.noise = Noise()
        self.digest = Digest()
        self._base = self._context = context if context is not None else EngineContext()
        self.ids = ids if ids is not None else IncidentIds()
        self._hot_budget = max(1, hot_alerts)
        self._hot_groups = max(1, hot_groups)
        self._hot_size = 0
        self._level = compress_level
        self._raw: dict[str, bytes] = {}
        self._hot: OrderedDict[str, tuple[GroupState, int]] = OrderedDict()
        # Timers: deadline -> keys armed for it, a heap of those deadlines, and how many keys
        # the buckets hold (stale ones included: a key re-armed elsewhere, or dropped, stays
        # until its bucket fires or the buckets are rebuilt).
        self._due: dict[float, list[str]] = {}
        self._times: list[float] = []
        self._armed = 0
        self._fired: set[str] = set()  # keys whose bucket fired in this `apply`
        # Group keys by the services of their alerts: a change of inhibiting incidents
        # concerns only their services' groups. Built on first use (a decode of every group),
        # then kept by `_store`; None again after a `load` (restore, partitions assigned).
        self._by_service: dict[str, set[str]] | None = None
        # Group keys by label values that silences pin (`labels.LabelIndex`): built on the
        # first silence change, kept by `_store`, None again after a `load`. A key dropped
        # stays listed (looked up keys are checked against the held ones).
        self._labels: LabelIndex | None = None
        # Incident records (`incidents.record`) in their stored form by key after
        # `RECORD_PREFIX` (head: incident id; timeline chunks: `record.chunk_key`), and the
        # recently written ones decoded (at most `_RECORD_ENTRIES` alerts and entries in all).
        self._records: dict[str, bytes] = {}
        self._decoded: OrderedDict[str, tuple[IncidentRecord, int]] = OrderedDict()
        self._decoded_size = 0
        # The `gone` section of recently stored or read groups with the mapping it encodes
        # (`codec.gone_section`): it changes rarely, and is then neither encoded nor decoded.
        self._gone: OrderedDict[str, tuple[Mapping[str, tuple[float, ...]], bytes]] = (
            OrderedDict())

    # --- context ----------------------------------------------------------------------------

    @property
    def context(self) -> EngineContext:
        """The config's context with the noise state's silences and inhibitors in its quiet."""
        return self._context

    @context.setter
    def context(self, value: EngineContext) -> None:
        self._base = value
        self._by_service = None  # `inhibit_at` may have changed
        self._requiet()

    def _requiet(self) -> None:
        base = self._base
        rule = base.incidents is not None and base.incidents.inhibit_lower_severity
        quiet = self.noise.quiet(base.quiet, incidents=rule, default=base.default_severity)
        self._context = base if quiet is base.quiet else base.with_(quiet=quiet)

    @property
    def silences(self) -> list[Silence]:
        return list(self.noise.silences.values())

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
        data = self._raw.get(key)
        if data is None:
            return None
        state = self._unpack(key, data)
        self._remember(key, state)
        return state

    def encoded(self, key: str) -> bytes | None:
        """The stored form of one group (`codec.pack`: what the changelog / SQLite row holds;
        `codec.unpacked(data, key)` gives its `to_bytes()` JSON)."""
        return self._raw.get(key)

    def stored(self) -> dict[str, bytes]:
        """Everything a backend holds for this engine, by key, as `Batch.encoded` wrote it:
        the groups, the incident records, the id counter, the noise state and the digest
        (`load` of each restores an equal engine)."""
        out = dict(self._raw)
        out.update((RECORD_PREFIX + ident, data) for ident, data in self._records.items())
        out[IDS_KEY] = self.ids.to_bytes()
        out[NOISE_KEY] = self.noise.to_bytes()
        out.update((k, v) for k, v in self.noise.stored(Noise()).items() if v is not None)
        out[DIGEST_KEY] = self.digest.to_bytes()
        return out

    def view(self, incident: IncidentState) -> Incident:
        """The whole view of an incident of a held group (its state keeps a hot view only:
        `router.engine.incidents.record`)."""
        return full_view(self._record(incident.view.id), incident.view)

    def next_deadline(self) -> datetime | None:
        """When `tick` next has something to do; None when no timer is armed."""
        found = self._next_group_deadline()
        due = self.digest.due
        if due is not None and (found is None or from_ts(due) < found):
            return from_ts(due)
        return found

    def _next_group_deadline(self) -> datetime | None:
        times, due, raw = self._times, self._due, self._raw
        while times:
            at = times[0]
            bucket = due[at]
            stale = 0
            for key in bucket:  # usually stops at the first key
                data = raw.get(key)
                if data is not None and packed_deadline(data) == at:
                    break
                stale += 1
            if stale:
                del bucket[:stale]
                self._armed -= stale
            if bucket:
                return from_ts(at)
            heapq.heappop(times)
            del due[at]
        return None

    # --- ownership ----------------------------------------------------------------------------

    def load(self, key: str, state: GroupState | bytes | None) -> None:
        """Restore one group (changelog / SQLite replay); None deletes (a tombstone)."""
        if key == IDS_KEY:
            self.ids = self.ids.loaded(None if isinstance(state, GroupState) else state)
            return
        if key == NOISE_KEY or key.startswith(INHIBITORS_KEY):
            self.noise = self.noise.loaded(key, None if isinstance(state, GroupState) else state)
            self._requiet()
            return
        if key == DIGEST_KEY:
            self.digest = Digest.from_bytes(None if isinstance(state, GroupState) else state)
            self._digest_again = bool(self.digest.outgoing)
            return
        if key.startswith(RECORD_PREFIX):
            self._forget_record(key)
            self._records.pop(key[len(RECORD_PREFIX):], None)
            if state is not None and not isinstance(state, GroupState):
                self._records[key[len(RECORD_PREFIX):]] = bytes(state)
            return
        if state is None:
            self.drop([key])
            return
        if isinstance(state, GroupState):
            data = self._pack(key, state)
        else:
            data = bytes(state)
            if data[:1] == b"{":  # plain to_bytes() JSON (an older store)
                data = frame(data, packed_deadline(data), key, self._level)
        held = self._raw.get(key)
        self._raw[key] = data
        self._forget_hot(key)
        self._by_service = None  # rebuilt when next needed
        self._labels = None
        self._arm(key, packed_deadline(data), packed_deadline(held) if held else None)

    def clear(self) -> None:
        """Forget everything, the incident counter included (before a full restore)."""
        self.drop(list(self._raw))
        self._records.clear()
        self._decoded.clear()
        self._decoded_size = 0
        self._gone.clear()
        self.ids = self.ids.loaded(None)
        self.noise = Noise()
        self.digest = Digest()
        self._requiet()

    def drop(self, keys: Iterable[str]) -> None:
        """Forget groups (partitions revoked); their timer entries die lazily."""
        for key in keys:
            if key == IDS_KEY:
                self.ids = self.ids.loaded(None)
                continue
            if key == NOISE_KEY or key.startswith(INHIBITORS_KEY):
                self.noise = Noise() if key == NOISE_KEY else self.noise.loaded(key, None)
                self._requiet()
                continue
            if key == DIGEST_KEY:
                self.digest = Digest()
                continue
            if key.startswith(RECORD_PREFIX):
                self._forget_record(key)
                self._records.pop(key[len(RECORD_PREFIX):], None)
                continue
            self._raw.pop(key, None)
            self._forget_hot(key)
            self._gone.pop(key, None)

    # --- deciding -----------------------------------------------------------------------------

    def apply(self, events: Sequence[Event | AlertsEvent], now: datetime,
              wake: Iterable[str] = ()) -> Batch:
        """Decide a batch of events in the order of their recorded times (`recorded_at`),
        firing each timer at its own deadline between them, then every timer due by `now`
        (and look at the groups in `wake` as if one were due).

        Before an event, the timers due at or before its time fire; events of one recorded
        time are decided together (their changes arm a group's timers once, so they make one
        notification). What is decided is thus a function of the events and their times, not
        of where a batch ends or when the step runs (docs/architecture.md).
        """
        run = _Run(self, now)
        ids_before = self.ids
        self.noise = self.noise.settled()
        noise_before = self.noise
        digest_before = self.digest
        at: datetime | None = None  # the recorded time of the events decided since timers fired
        for event in events:
            t = recorded_at(event, now)
            if t != at:
                self._settle(run, t)
                at = run.now = t
                run.now_ts = to_ts(t)
            key = event_group_key(event)
            if key == NOISE_KEY:
                assert isinstance(event, CommandEvent)
                self.noise = self.noise.applied(event, self.ids.offset)
                if self.noise is not noise_before:
                    self._requiet()
            elif key == DIGEST_KEY:
                assert isinstance(event, CommandEvent)
                self.digest = digest.received(self.digest, event, Instant.of(run.now), self.context)
            elif isinstance(event, AlertsEvent):
                for alert in event.alerts:  # one request's alerts of one group, together
                    run.decide(key or group_key_of(alert), AlertEvent.of(alert))
            elif key is not None:
                run.decide(key, event)
            else:
                run.unknown_commands += 1
        self._settle(run, now)
        run.now, run.now_ts = now, to_ts(now)
        due: dict[str, None] = {}
        if self.noise is not noise_before:  # silences or inhibitors changed: look again
            if (self.noise.silences is noise_before.silences
                    and self.noise.sources is noise_before.sources):
                # Only inhibiting incidents (another engine's): their services' groups.
                services = self.noise.changed_services(noise_before)
                wake = [*wake, *self._service_candidates(services, run)]
            elif self.noise.sources is noise_before.sources:  # silences only
                wake = [*wake, *self._quiet_candidates(noise_before.silences, run)]
            else:
                wake = [*wake, *self._quiet_candidates()]
        due.update(dict.fromkeys(k for k in wake if k in self._raw or run.work.get(k)))
        for key in due:
            run.decide(key, Tick.build(group_key=key))
        self._incident_rule(run)
        self._deferred_posts(run)
        self._digest(run)
        records = self._file(run)
        changed, encoded = self._store(run.before, run.work)
        encoded.update(records)
        if self.digest != digest_before:
            encoded[DIGEST_KEY] = self.digest.to_bytes()
        if self.ids != ids_before:
            encoded[IDS_KEY] = self.ids.to_bytes()
        if self.noise is not noise_before:
            encoded.update(self.noise.stored(noise_before))
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
            quieted=_quieted(run.before, run.work),
            commands=run.commands,
        )

    def _incident_rule(self, run: _Run) -> None:
        """After a batch's decisions: the incidents that now inhibit (or stop), every group
        looking again when that changed, and each alert they newly keep quiet listed on its
        incident's timeline (`router.engine.incidents.inhibit`). What belongs to groups held
        elsewhere (another Kafka partition) goes out as `Batch.commands`."""
        was = self.noise
        found = inhibit.own_updated(was.services, run.views.values(), self._base.incidents)
        if found is not None:
            self.noise = was.with_services(found)
            self._requiet()
            run.commands += incident_commands(was.services, found, self.ids.offset, run.now)
            changed = self.noise.changed_services(was, among=found)
            for key in self._service_candidates(changed, run):
                run.decide(key, Tick.build(group_key=key))
        if not self.noise.services:
            return
        for key in list(run.work):
            for alert, ident in inhibit.newly_inhibited(run.before.get(key), run.work[key]):
                inc = self.noise.incident(alert.service or alert.labels.get("service"), ident)
                if inc is None:
                    continue
                note = inhibit.note_command(alert, inc, run.now)
                if inc.group_key in run.work or inc.group_key in self._raw:
                    run.decide(inc.group_key, note)
                else:
                    run.commands.append(note)

    def _deferred_posts(self, run: _Run) -> None:
        """Quiet chat posts for the alerts business hours deferred in this batch."""
        ctx = self.context
        if not ctx.deferred_chat:
            return
        at = Instant.of(run.now)
        for key, state in run.work.items():
            if state is not None and state.quiet_until is not None:
                run.notes += deferred.quiet_posts(run.before.get(key), state, at, ctx)

    def _digest(self, run: _Run) -> None:
        """Notifications routed to the digest go into it; a due digest goes out."""
        at = Instant.of(run.now)
        if self._digest_via_log:
            entries, run.notes = digest.split(run.notes, at, self.context)
            if entries or self._digest_again or self.digest.outgoing:
                self.digest, items = digest.forwarded(self.digest, entries, at, self.context,
                                                      again=self._digest_again)
                self._digest_again = False
                run.commands += [items] if items is not None else []
        else:
            self.digest, run.notes = digest.collect(self.digest, run.notes, at, self.context)
        self.digest, summaries = digest.send(self.digest, at, self.context)
        run.notes += summaries

    def tick(self, now: datetime) -> Batch:
        """Fire every timer due at `now` (group_wait, group_interval, repeat, flap, expiry)."""
        return self.apply((), now)

    def set_quiet(self, quiet: Quiet, now: datetime) -> Batch:
        """New silences / windows / inhibitions in force: every group with a firing alert looks
        again at once (a silence created mutes what it matches before anything else is sent;
        one expired early lets its alerts notify). Costs a decode of every group: silences
        change rarely."""
        self.context = self._base.with_(quiet=quiet)
        return self.apply((), now, wake=self._quiet_candidates())

    def _quiet_candidates(self, silences: Mapping[str, Silence] | None = None,
                          run: _Run | None = None) -> list[str]:
        """Groups a change of silences or inhibitors may concern, as `run` left them. When
        only silences changed (from `silences` to the noise state's), the groups the changed
        ones can match (`labels.LabelIndex`) and the batch's; else, or when a changed silence
        pins no label value, those with a firing alert or a mute (a decode of every group)."""
        work = run.work if run is not None else {}
        if silences is not None and run is not None:
            # A version already expired mutes nothing (retention drops those): no matter.
            changed = [x for x in changed_silences(silences, self.noise.silences)
                       if x.ends_at > run.now]
            found = self._silence_candidates(changed)
            if found is not None:
                return sorted(found.union(work).intersection(self._raw))
        keys = dict.fromkeys([*self._raw, *work])
        return [key for key in keys
                if (s := work[key] if key in work else self._peek(key)) is not None
                and (s.firing or s.quiet_until)]

    def _silence_candidates(self, silences: list[Silence]) -> set[str] | None:
        """The groups `silences` can match, or None when one of them pins no label value."""
        names = set()
        for silence in silences:
            name = indexable(silence.matchers)
            if name is None:
                return None
            names.add(name)
        index = self._labels
        if index is None:
            index = self._labels = LabelIndex()
        for name in sorted(names - index.names):  # a decode of every group, once per name
            index.add_name(name, ((key, self._peek(key)) for key in list(self._raw)))
        found: set[str] = set()
        for silence in silences:
            found |= index.lookup(silence.matchers) or set()
        return found

    def _peek(self, key: str) -> GroupState:
        """A held group's state, decoded without displacing the hot ones."""
        hot = self._hot.get(key)
        return hot[0] if hot is not None else self._unpack(key, self._raw[key])

    def _service_candidates(self, services: set[str], run: _Run) -> list[str]:
        """Groups with an alert of one of `services`, as `run` left them."""
        if not services:
            return []
        index = self._by_service
        below = self._inhibit_at()
        if index is None:
            index = {}
            for key, data in list(self._raw.items()):
                # Decoded for the index only: the hot groups stay as they are.
                hot = self._hot.get(key)
                held = hot[0] if hot is not None else unpack(data, key)
                for service in _services(held, below):
                    index.setdefault(service, set()).add(key)
            self._by_service = index
        keys = dict.fromkeys(k for svc in services for k in index.get(svc, ()) if k in self._raw)
        for key, state in run.work.items():
            if state is not None and not services.isdisjoint(_services(state, below)):
                keys[key] = None
        # Sorted: the index holds sets (hash order differs per process), and the order groups
        # are decided in allocates incident ids, which a replay must allocate the same.
        return sorted(keys)

    def _index(self, key: str, old: GroupState | None, new: GroupState | None) -> None:
        index = self._by_service
        if index is None:
            return
        below = self._inhibit_at()
        was = _services(old, below) if old is not None else set()
        now = _services(new, below) if new is not None else set()
        for service in was - now:
            index.get(service, set()).discard(key)
        for service in now - was:
            index.setdefault(service, set()).add(key)

    def _inhibit_at(self) -> Severity:
        cfg = self._base.incidents
        return cfg.inhibit_at if cfg is not None else Severity.SEV1

    # --- internals ----------------------------------------------------------------------------

    def _settle(self, run: _Run, until: datetime) -> None:
        """Arm the timers of the groups alert events changed since the last call (once each,
        at the time of those events: `decide.rearm`), then fire every timer due by `until`."""
        quiet: list[str] = []
        for key in run.touched:
            state = run.work.get(key)
            if state is not None:
                state = run.work[key] = rearm(state, run.now, self.context)
                if state is not None:
                    run.arm(key, state)
                    if state.quiet_until is not None and state.incidents:
                        quiet.append(key)  # its incident's timeline says so now (a Tick)
        run.touched.clear()
        for key in quiet:
            run.decide(key, Tick.build(group_key=key))
        self._fire(run, to_ts(until))

    def _fire(self, run: _Run, until: float) -> None:
        """Fire the timers due by `until`, earliest first, each group at its deadline (so the
        notification and the next deadlines do not depend on when the step ran), the groups
        of one deadline in key order. Held groups' timers are in the buckets; those of groups
        decided in this run in `run.timers` (a bucket entry of such a group is stale).

        A timer `CATCH_UP_SECONDS` or more overdue (the engine was down or far behind) fires once
        at `until` instead: a group sends what is due by then, not every reminder or
        escalation step it missed."""
        late: set[str] = set()
        while (at := self._next_due(run, until - CATCH_UP_SECONDS)) is not None:
            late |= self._take_due(run, at)
        if late:
            run.now = _instant(until)
            run.now_ts = to_ts(run.now)
            for key in sorted(late):
                run.decide(key, Tick.build(group_key=key))
        while (at := self._next_due(run, until)) is not None:
            keys = self._take_due(run, at)
            run.now = _instant(at)
            run.now_ts = to_ts(run.now)
            for key in sorted(keys):
                run.decide(key, Tick.build(group_key=key))

    def _next_due(self, run: _Run, until: float) -> float | None:
        """The earliest deadline of a bucket or of `run.timers` if due by `until`."""
        times, later = self._times, run.timers
        at = times[0] if times and times[0] <= until else None
        if later and later[0][0] <= until and (at is None or later[0][0] < at):
            at = later[0][0]
        return at

    def _take_due(self, run: _Run, at: float) -> set[str]:
        """The groups whose timer is due at `at`, taken off the buckets and `run.timers`."""
        times, due, raw, work, fired, later = (
            self._times, self._due, self._raw, run.work, self._fired, run.timers)
        keys: set[str] = set()
        if times and times[0] == at:
            heapq.heappop(times)
            bucket = due.pop(at)
            self._armed -= len(bucket)
            fired.update(bucket)  # `_store` arms them again from their new state
            for key in bucket:
                data = raw.get(key)
                if key not in work and data is not None and packed_deadline(data) == at:
                    keys.add(key)
        armed = run.armed
        while later and later[0][0] == at:
            _, key = heapq.heappop(later)
            if armed.get(key) == at and key not in run.touched:
                keys.add(key)
        return keys

    def _store(
        self, before: dict[str, GroupState | None], work: dict[str, GroupState | None]
    ) -> tuple[dict[str, GroupState | None], dict[str, bytes | None]]:
        changed: dict[str, GroupState | None] = {}
        encoded: dict[str, bytes | None] = {}
        raw, fired = self._raw, self._fired
        for key, new in work.items():
            old = before[key]
            if new is not old:
                self._index(key, old, new)
                if self._labels is not None:
                    self._labels.update(key, old, new)
            if new is None:
                if old is not None:
                    self.drop([key])
                    changed[key] = encoded[key] = None
                continue
            held = raw.get(key)
            # The deadline its bucket entry is for (none left when its bucket just fired).
            previous = None if held is None or key in fired else packed_deadline(held)
            if new is not old:
                data = self._pack(key, new)
                if old is None or data != held:
                    raw[key] = held = data
                    changed[key] = new
                    encoded[key] = data
                if key in self._hot or len(new.alerts) > 1:
                    self._remember(key, new)  # a single alert's group decodes quickly
            assert held is not None
            self._arm(key, packed_deadline(held), previous)
        fired.clear()
        if self._armed > 2 * len(raw) + 1024:
            self._rebuild_timers()
        return changed, encoded

    def _file(self, run: _Run) -> dict[str, bytes | None]:
        """What the batch added to incident views goes to their records: the changed groups
        keep hot views, `run.views` become whole views, and the records that changed (or went
        with their incident) are returned in their stored form, by their keys."""
        records: dict[str, IncidentRecord] = {}
        gone: set[str] = set()
        for key, new in run.work.items():
            old = run.before[key]
            if new is old:
                continue
            kept = {x.view.id for x in new.incidents} if new is not None else set()
            if old is not None:
                gone.update(x.view.id for x in old.incidents if x.view.id not in kept)
            if new is None or not any(pending(x.view) for x in new.incidents):
                continue
            incidents = []
            for x in new.incidents:
                if pending(x.view):
                    full = full_view(self._record(x.view.id), x.view)
                    records[x.view.id] = record_of(full)
                    x = x.with_(view=hot_view(full, new.alerts))
                incidents.append(x)
            run.work[key] = new.with_(incidents=tuple(incidents))
        for ident, view in run.views.items():  # from the records as the batch found them
            run.views[ident] = full_view(self._record(ident), view)
        out: dict[str, bytes | None] = {}
        held = self._records
        for ident in gone - records.keys():
            self._forget_record(RECORD_PREFIX + ident)
            for key in record_writes(ident, None, None, held):
                held.pop(key, None)
                out[RECORD_PREFIX + key] = None
        for ident, whole in records.items():
            for key, data in record_writes(ident, self._record(ident), whole, held,
                                           self._level).items():
                if data is None:
                    held.pop(key, None)
                else:
                    held[key] = data
                out[RECORD_PREFIX + key] = data
            self._keep_record(ident, whole)
        return out

    def _record(self, ident: str) -> IncidentRecord | None:
        hot = self._decoded.get(ident)
        if hot is not None:
            self._decoded.move_to_end(ident)
            return hot[0]
        found = read_record(ident, self._records)
        if found is not None:
            self._keep_record(ident, found)
        return found

    def _keep_record(self, ident: str, record: IncidentRecord) -> None:
        self._forget_record(RECORD_PREFIX + ident)
        size = len(record.timeline) + len(record.alerts) + 1
        self._decoded[ident] = (record, size)
        self._decoded_size += size
        while self._decoded_size > _RECORD_ENTRIES and len(self._decoded) > 1:
            _, (_, evicted) = self._decoded.popitem(last=False)
            self._decoded_size -= evicted

    def _forget_record(self, key: str) -> None:
        """Drop the decoded copy of the record stored under `key` (its bytes stay)."""
        hot = self._decoded.pop(ident_of(key[len(RECORD_PREFIX):]), None)
        if hot is not None:
            self._decoded_size -= hot[1]

    def _pack(self, key: str, state: GroupState) -> bytes:
        # `codec.pack` for the key it is stored under (the same as `state.key`, but exact even
        # if it were not: the key left out of the frame is the one it is read back with).
        section = None
        if state.gone:
            held = self._gone.get(key)
            if held is not None and held[0] is state.gone:
                section = held[1]
                self._gone.move_to_end(key)
            else:
                section = gone_section(state.gone, self._level)
                self._keep_gone(key, state.gone, section)
        return pack_as(state, key, self._level, section)

    def _unpack(self, key: str, data: bytes) -> GroupState:
        """`codec.unpack`, with the `gone` mapping it held last for the same section."""
        section = gone_of(data)
        if section is None:
            return unpack(data, key)
        held = self._gone.get(key)
        if held is not None and held[1] == section:
            self._gone.move_to_end(key)
            return unpack(data, key, held[0])
        state = unpack(data, key)
        self._keep_gone(key, state.gone, section)
        return state

    def _keep_gone(self, key: str, gone: Mapping[str, tuple[float, ...]], section: bytes,
                   ) -> None:
        self._gone[key] = (gone, section)
        self._gone.move_to_end(key)
        if len(self._gone) > _GONE_SECTIONS:
            self._gone.popitem(last=False)

    def _arm(self, key: str, deadline: float | None, previous: float | None) -> None:
        if deadline is None or deadline == previous:
            return  # nothing to fire, or its entry is still in that bucket
        bucket = self._due.get(deadline)
        if bucket is None:
            self._due[deadline] = [key]
            heapq.heappush(self._times, deadline)
        else:
            bucket.append(key)
        self._armed += 1

    def _rebuild_timers(self) -> None:
        """Buckets from the held deadlines only (too many stale entries)."""
        due: dict[float, list[str]] = {}
        for key, data in self._raw.items():
            deadline = packed_deadline(data)
            if deadline is not None:
                due.setdefault(deadline, []).append(key)
        self._due = due
        self._times = list(due)
        heapq.heapify(self._times)
        self._armed = sum(len(keys) for keys in due.values())

    def _remember(self, key: str, state: GroupState) -> None:
        self._forget_hot(key)
        size = len(state.alerts) + 1
        self._hot[key] = (state, size)
        self._hot_size += size
        while (self._hot_size > self._hot_budget or len(self._hot) > self._hot_groups) and len(
                self._hot) > 1:
            _, (_, evicted) = self._hot.popitem(last=False)
            self._hot_size -= evicted

    def _forget_hot(self, key: str) -> None:
        hot = self._hot.pop(key, None)
        if hot is not None:
            self._hot_size -= hot[1]


# How overdue a timer may be and still fire at its deadline (`Engine._fire`): within it,
# decisions do not depend on when the engine ran; beyond, it was down and catches up at once.
CATCH_UP_SECONDS = 15 * 60.0

# Decoded incident records kept, in timeline entries and alerts (each a few hundred bytes).
_RECORD_ENTRIES = 20_000
# Groups whose `gone` section is kept with its mapping (`Engine._pack`).
_GONE_SECTIONS = 4096


def recorded_at(event: Event | AlertsEvent, now: datetime) -> datetime:
    """The time an event is decided at: when the router received it (an alert's
    `received_at`, a command's `at`), or `now` if that is later (a clock ahead of the engine's
    never fires a timer early)."""
    if isinstance(event, AlertEvent):
        t = event.alert.received_at
    elif isinstance(event, AlertsEvent):
        t = max(a.received_at for a in event.alerts)
    elif isinstance(event, CommandEvent):
        t = event.at
    else:
        return now
    t = utc(t)
    return t if t < now else now


def _instant(ts: float) -> datetime:
    """The datetime of a deadline, rounded up to the microsecond: a timer fired at it is due."""
    dt = from_ts(ts)
    return dt if to_ts(dt) >= ts else dt + timedelta(microseconds=1)


def _services(state: GroupState, below: Severity) -> set[str]:
    """The services of a group's alerts less severe than `below` (those an incident could
    keep quiet: alerts of unknown severity count), as the incident rule reads them."""
    out: set[str] = set()
    for st in state.alerts.values():
        a = st.alert
        if a.severity is not None and a.severity.rank <= below.rank:
            continue
        service = a.service or a.labels.get("service")
        if service:
            out.add(service)
    return out


def _quieted(before: dict[str, GroupState | None],
             after: dict[str, GroupState | None]) -> dict[str, int]:
    """Alerts that became quiet in one `apply`, by reason (only groups with a mute look)."""
    out: dict[str, int] = {}
    for key, new in after.items():
        if new is None or new.quiet_until is None:
            continue
        old = before.get(key)
        for alert_key, st in new.alerts.items():
            was = old.alerts.get(alert_key) if old is not None else None
            if st.muted is not None and (was is None or was.muted is None):
                reason = st.muted.partition(":")[0]
                out[reason] = out.get(reason, 0) + 1
    return out


class _Run:
    """The working set of one `apply`: states as decided so far, and what was emitted."""

    def __init__(self, engine: Engine, now: datetime) -> None:
        self.engine = engine
        self.now = now
        self.now_ts = to_ts(now)  # kept with `now` by `Engine`
        self.before: dict[str, GroupState | None] = {}
        self.work: dict[str, GroupState | None] = {}
        self.notes: list[Notification] = []
        self.commands: list[CommandEvent] = []
        self.views: dict[str, Incident] = {}
        self.duplicates = self.stale = self.flapping = self.unknown_commands = 0
        # Groups changed by alert events: re-armed once after the events of one time
        # (decide.rearm).
        self.touched: dict[str, None] = {}
        # (deadline, key) of the groups decided in this run (`Engine._fire` checks them), and
        # the deadline each was last armed for (earlier entries of a key are stale).
        self.timers: list[tuple[float, str]] = []
        self.armed: dict[str, float] = {}

    def arm(self, key: str, state: GroupState, after: float | None = None) -> None:
        """`Engine._fire` looks at the group at its next deadline (if later than `after`: a
        Tick that left one due is not fired again in the same run)."""
        deadline = state.next_deadline()
        if deadline is not None and (after is None or deadline > after):
            heapq.heappush(self.timers, (deadline, key))
            self.armed[key] = deadline
        else:
            self.armed.pop(key, None)

    def decide(self, key: str, event: Event) -> None:
        fresh = key not in self.work
        state = self.engine.get(key) if fresh else self.work[key]
        context = self.engine.context
        if isinstance(event, AlertEvent) and is_duplicate(state, event.alert, context):
            self.duplicates += 1  # the group stays as it is: not re-armed, not written
            return
        if fresh:
            self.before[key] = state
        if (isinstance(event, CommandEvent) and event.command != HEARTBEAT
                and command_target(state, event, context) is None):
            self.unknown_commands += 1
            return
        # Alert events only arm timers; the Tick after the batch sends what is due.
        if not isinstance(event, AlertEvent) and key in self.touched:
            # A command or Tick after alert events of this batch sees their timers armed.
            del self.touched[key]
            if state is not None:
                state = rearm(state, self.now, context)
        new, emitted, self.engine.ids = decide(state, event, self.now, context, self.engine.ids,
                                               flush=False)
        if isinstance(event, AlertEvent):
            self.touched[key] = None
        elif new is not None:
            self.arm(key, new, self.now_ts if isinstance(event, Tick) else None)
        else:
            self.armed.pop(key, None)
        self.work[key] = new
        self.notes.extend(emitted)
        old_incidents = state.incidents if state is not None else ()
        new_incidents = new.incidents if new is not None else ()
        if new_incidents and new_incidents is not old_incidents:
            olds = {x.view.id: x.view for x in old_incidents}
            for x in new_incidents:
                old = olds.get(x.view.id)
                # Views are immutable: one kept as is was not changed (no deep comparison).
                if old is not x.view and old != x.view:
                    self.views[x.view.id] = x.view
        if new is not None:
            self.duplicates += new.duplicates - (state.duplicates if state is not None else 0)
            self.stale += new.stale - (state.stale if state is not None else 0)
            was = state.flapping if state is not None else False
            if new.flapping and not was:
                self.flapping += 1
