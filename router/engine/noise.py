"""The engine's cross-group noise state: silences, the firing alerts that may inhibit others,
and the open incidents that inhibit their services' less severe alerts. Pure.

All reach every engine as commands on the log under NOISE_KEY (the Kafka log writes them to
every partition), so each partition's engine holds the whole set, stores it beside its groups
(committed with them), and a new owner of a partition restores it. Applying the same commands
in the same order gives the same state everywhere.

Inhibiting incidents are stored per service (`INHIBITORS_KEY` + service), so that a change
writes that service's record rather than every service's, and they travel as one command per
engine batch naming only the services whose lead (`inhibit.Inhibitors`) changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

import orjson

from router.engine.incidents.inhibit import IncidentMuter, Inhibitors, OpenIncident
from router.engine.overlay import Overlay
from router.engine.quiet import Muter, Quiet
from router.model import Alert, AlertEvent, CommandEvent, Severity, Status
from router.noise.heartbeats import HEARTBEAT, Heartbeat
from router.noise.inhibit import InhibitRule
from router.noise.muters import (
    HoursMuter,
    InhibitMuter,
    SilenceMuter,
    labels_of,
    parsed_matchers,
)
from router.noise.silences import Silence

V = TypeVar("V")
# Where the noise state is stored beside the group states; also the log key of noise commands
# (a group key never starts with NUL).
NOISE_KEY = "\x00noise"
SILENCE = "silence"  # args: {"silence": <Silence JSON>}; set, replacing the one of its id
INHIBIT_SOURCE = "inhibit_source"  # args: {"key": alert key, "labels": {...}, "firing": bool}
# args: {"origin": partition, "leads": {service: {"id", "service", "severity", "group_key"} or
# None}}: the services whose lead inhibiting incident changed on that engine
# (`router.engine.incidents.inhibit.Inhibitors`).
INCIDENT_INHIBITS = "incident_inhibits"
# Where one service's inhibitors are stored beside the group states: this prefix + service
# (its lead and what was heard), and + service + NUL + incident id (each of its own incidents).
INHIBITORS_KEY = "\x00inhibitors\x00"
# Expired silences are kept this long (Alertmanager's default --data.retention, 120h).
SILENCE_RETENTION = timedelta(hours=120)


@dataclass(frozen=True, slots=True)
class Noise:
    silences: Mapping[str, Silence] = field(default_factory=dict)
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # firing inhibitors
    services: Mapping[str, Inhibitors] = field(default_factory=dict)  # inhibiting incidents
    # `services` differs from `base` only in `touched` (None: not tracked). So what changed
    # since a batch began is found without walking every service: one SEV1 incident of a new
    # service per batch made that walk quadratic in the services held.
    base: Mapping[str, Inhibitors] | None = field(default=None, compare=False, repr=False)
    touched: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def settled(self) -> Noise:
        """This state with its change tracking started afresh (at a batch's start)."""
        return self if self.base is None else replace(self, base=None, touched=frozenset())

    def _services(self, services: Mapping[str, Inhibitors], keys: Iterable[str]) -> Noise:
        if self.base is None:
            return replace(self, services=services, base=self.services, touched=frozenset(keys))
        return replace(self, services=services, touched=self.touched.union(keys))

    def _changed_keys(self, before: Noise) -> Iterable[str]:
        """The services that may differ from `before`'s (all of them unless tracked)."""
        if self.services is before.services:
            return ()
        if self.base is not None and self.base is before.services:
            return self.touched
        return self.services.keys() | before.services.keys()

    def applied(self, event: CommandEvent, origin: int = 0) -> Noise:
        """This state after one noise command (unknown commands change nothing); `origin` is
        this engine's partition, whose own announcements coming back change nothing."""
        args = event.args
        if event.command == SILENCE:
            silence = Silence.model_validate(args.get("silence"))
            kept = {k: s for k, s in self.silences.items()
                    if s.ends_at >= event.at - SILENCE_RETENTION}
            return replace(self, silences={**kept, silence.id: silence})
        if event.command == INHIBIT_SOURCE:
            labels = {str(k): str(v) for k, v in dict(args.get("labels") or {}).items()}
            sources = _set(self.sources, str(args.get("key", "")),
                           labels if args.get("firing") else None)
            return self if sources is None else replace(self, sources=sources)
        if event.command == INCIDENT_INHIBITS:
            sender = int(str(args.get("origin", -1)))
            leads = dict(args.get("leads") or {})
            if sender == origin or not leads:
                return self
            services = dict(self.services)
            empty = Inhibitors()
            for svc, lead in leads.items():
                inc = (OpenIncident.of_json(str(lead["id"]), lead)
                       if isinstance(lead, dict) else None)
                services[str(svc)] = services.get(str(svc), empty).with_heard(sender, inc)
            return self._services(services, map(str, leads))
        return self

    def with_services(self, changed: Mapping[str, Inhibitors]) -> Noise:
        """With these services' inhibitors replaced (empty ones dropped). An `Overlay`: the
        services not changed are shared with this state, not copied."""
        held = self.services
        services = held if isinstance(held, Overlay) else Overlay(held)
        return self._services(
            services.updated({svc: None if inh.empty else inh for svc, inh in changed.items()}),
            changed)

    def loaded(self, key: str, data: bytes | bytearray | memoryview | None) -> Noise:
        """With one stored record restored: NOISE_KEY (silences, sources) or one service's
        inhibitors (None: deleted)."""
        if key == NOISE_KEY:
            return replace(Noise.from_bytes(data), services=self.services)
        # Restoring (a fresh engine: nothing holds the state it replaces), so one record is
        # put in place rather than copying every service (or every own incident) per record.
        services = self.services if isinstance(self.services, dict) else dict(self.services)
        svc, _, ident = key.removeprefix(INHIBITORS_KEY).partition("\x00")
        held = services.get(svc, Inhibitors())
        if not ident:
            inh = held.loaded(data)
        else:
            own = held.own if isinstance(held.own, dict) else dict(held.own)
            if data is None:
                own.pop(ident, None)
            else:
                own[ident] = OpenIncident.of_json(ident, orjson.loads(bytes(data)))
            inh = Inhibitors(own, held.lead, held.heard)
        if inh.empty:
            services.pop(svc, None)
        else:
            services[svc] = inh
        return replace(self, services=services, base=None, touched=frozenset())

    def incident(self, service: str | None, ident: str) -> OpenIncident | None:
        """The inhibiting incident `ident` of `service` as this engine knows it."""
        inh = self.services.get(service) if service else None
        return next((i for i in inh.in_force if i.id == ident), None) if inh else None

    def quiet(self, base: Quiet, *, incidents: bool = True,
              default: Severity = Severity.SEV3) -> Quiet:
        """The config's muters with the silences in front, the inhibitors' sources in, and the
        open incidents' rule (unless `incidents` is off) after the inhibition rules, before
        business hours; `default` is the severity of alerts no rule classified."""
        inhibiting = incidents and bool(self.services)
        if not self.silences and not self.sources and not inhibiting:
            return base
        muters: list[Muter] = [SilenceMuter(self.silences.values())] if self.silences else []
        for m in base.muters:
            if isinstance(m, InhibitMuter):
                m = InhibitMuter(m.rules, self.sources.values())
            elif inhibiting and isinstance(m, HoursMuter):
                muters.append(IncidentMuter(default=default, services=self.services))
                inhibiting = False
            muters.append(m)
        if inhibiting:
            muters.append(IncidentMuter(default=default, services=self.services))
        return Quiet(muters)

    def to_bytes(self) -> bytes:
        """Silences and sources (the inhibitors are stored per service: `stored`)."""
        return orjson.dumps({
            "silences": [s.model_dump(mode="json") for s in self.silences.values()],
            "sources": self.sources,
        })

    def stored(self, before: Noise) -> dict[str, bytes | None]:
        """The records to write for what changed since `before`: NOISE_KEY, and each service
        whose inhibitors changed (None: deleted)."""
        out: dict[str, bytes | None] = {}
        if self.silences is not before.silences or self.sources is not before.sources:
            out[NOISE_KEY] = self.to_bytes()
        if self.services is not before.services:
            new, old = self.services, before.services
            empty = Inhibitors()
            for svc in self._changed_keys(before):
                now, was = new.get(svc, empty), old.get(svc, empty)
                if now is was:
                    continue
                if (now.lead, now.heard) != (was.lead, was.heard):
                    out[INHIBITORS_KEY + svc] = now.to_bytes()
                if now.own is not was.own:
                    prefix = INHIBITORS_KEY + svc + "\x00"
                    for ident, inc in now.own.items():
                        if was.own.get(ident) != inc:
                            out[prefix + ident] = orjson.dumps(inc.to_json())
                    for ident in was.own.keys() - now.own.keys():
                        out[prefix + ident] = None
        return out

    def changed_services(self, before: Noise, among: Iterable[str] | None = None) -> set[str]:
        """The services (of `among`, default all) whose inhibiting incidents in force differ
        from `before`'s."""
        if self.services is before.services:
            return set()
        new, old = self.services, before.services
        empty = Inhibitors()
        return {svc for svc in (self._changed_keys(before) if among is None else among)
                if new.get(svc, empty).in_force != old.get(svc, empty).in_force}

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | None) -> Noise:
        if data is None:
            return cls()
        raw = orjson.loads(bytes(data))
        silences = [Silence.model_validate(s) for s in raw.get("silences") or ()]
        # (An "incidents" map from before the per-service records is left out: the open
        # incidents inhibit again when their views next change.)
        return cls(silences={s.id: s for s in silences},
                   sources={str(k): dict(v) for k, v in (raw.get("sources") or {}).items()})


def _set(mapping: Mapping[str, V], key: str, value: V | None) -> dict[str, V] | None:
    """`mapping` with `key` set to `value` (None: removed); None when that changes nothing."""
    if mapping.get(key) == value:
        return None
    out = dict(mapping)
    if value is None:
        del out[key]
    else:
        out[key] = value
    return out


def inhibitor_commands(alerts: Iterable[Alert], rules: Sequence[InhibitRule]
                       ) -> list[CommandEvent]:
    """One noise command per alert that a rule's source matchers match: it may inhibit others
    anywhere, so every engine learns whether it fires."""
    out = []
    for a in alerts:
        labels = labels_of(a)
        if any(r.source_matchers.matches(labels) for r in rules):
            out.append(CommandEvent.build(
                kind="command", command=INHIBIT_SOURCE, group_key=NOISE_KEY, actor=a.source,
                at=a.event_time, args={"key": a.key, "labels": dict(labels),
                                       "firing": a.status is Status.FIRING}))
    return out


def heartbeat_of(event: AlertEvent, heartbeats: Sequence[Heartbeat]) -> CommandEvent | None:
    """The beat a firing alert stands for (it matches a heartbeat's matchers), or None."""
    alert = event.alert
    if alert.status is not Status.FIRING:
        return None
    labels = labels_of(alert)
    for hb in heartbeats:
        if hb.matchers and parsed_matchers(hb.matchers).matches(labels):
            return CommandEvent.build(kind="command", command=HEARTBEAT, group_key=hb.group_key,
                                      actor=alert.source, at=alert.received_at, args={})
    return None


def is_noise(event: object) -> bool:
    return isinstance(event, CommandEvent) and event.group_key == NOISE_KEY


def incident_commands(before: Mapping[str, Inhibitors], after: Mapping[str, Inhibitors],
                      origin: int, at: datetime) -> list[CommandEvent]:
    """The one noise command that tells the other engines which services' leads changed
    (none when no lead did: a storm of incidents of one service is one announcement)."""
    leads: dict[str, object] = {}
    for svc, inh in after.items():
        old = before.get(svc)
        lead = old.lead if old is not None else None
        if inh.lead != lead:
            leads[svc] = None if inh.lead is None else {"id": inh.lead.id, **inh.lead.to_json()}
    if not leads:
        return []
    return [CommandEvent.build(kind="command", command=INCIDENT_INHIBITS, group_key=NOISE_KEY,
                               actor="router", at=at, args={"origin": origin, "leads": leads})]
