"""The engine's cross-group noise state: silences, the firing alerts that may inhibit others,
and the open incidents that inhibit their services' less severe alerts. Pure.

Both reach every engine as commands on the log under NOISE_KEY (the Kafka log writes them to
every partition), so each partition's engine holds the whole set, stores it beside its groups
(committed with them), and a new owner of a partition restores it. Applying the same commands
in the same order gives the same state everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

import orjson

from router.engine.incidents.inhibit import IncidentMuter, OpenIncident
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
# args: {"id": incident id, "open": bool, "service", "severity", "group_key"}: an incident
# starts or stops inhibiting (`router.engine.incidents.inhibit`).
INCIDENT_INHIBITS = "incident_inhibits"
# Expired silences are kept this long (Alertmanager's default --data.retention, 120h).
SILENCE_RETENTION = timedelta(hours=120)


@dataclass(frozen=True, slots=True)
class Noise:
    silences: Mapping[str, Silence] = field(default_factory=dict)
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # firing inhibitors
    incidents: Mapping[str, OpenIncident] = field(default_factory=dict)  # inhibiting, by id

    def applied(self, event: CommandEvent) -> Noise:
        """This state after one noise command (unknown commands change nothing)."""
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
            ident = str(args.get("id", ""))
            incidents = _set(self.incidents, ident,
                             OpenIncident.of_json(ident, args) if args.get("open") else None)
            return self if incidents is None else replace(self, incidents=incidents)
        return self

    def with_incidents(self, incidents: Mapping[str, OpenIncident]) -> Noise:
        return replace(self, incidents=incidents)

    def quiet(self, base: Quiet, *, incidents: bool = True,
              default: Severity = Severity.SEV3) -> Quiet:
        """The config's muters with the silences in front, the inhibitors' sources in, and the
        open incidents' rule (unless `incidents` is off) after the inhibition rules, before
        business hours; `default` is the severity of alerts no rule classified."""
        inhibiting = incidents and bool(self.incidents)
        if not self.silences and not self.sources and not inhibiting:
            return base
        muters: list[Muter] = [SilenceMuter(self.silences.values())] if self.silences else []
        for m in base.muters:
            if isinstance(m, InhibitMuter):
                m = InhibitMuter(m.rules, self.sources.values())
            elif inhibiting and isinstance(m, HoursMuter):
                muters.append(IncidentMuter(self.incidents.values(), default))
                inhibiting = False
            muters.append(m)
        if inhibiting:
            muters.append(IncidentMuter(self.incidents.values(), default))
        return Quiet(muters)

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "silences": [s.model_dump(mode="json") for s in self.silences.values()],
            "sources": self.sources,
            **({"incidents": {k: v.to_json() for k, v in self.incidents.items()}}
               if self.incidents else {}),
        })

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | None) -> Noise:
        if data is None:
            return cls()
        raw = orjson.loads(bytes(data))
        silences = [Silence.model_validate(s) for s in raw.get("silences") or ()]
        return cls(silences={s.id: s for s in silences},
                   sources={str(k): dict(v) for k, v in (raw.get("sources") or {}).items()},
                   incidents={str(k): OpenIncident.of_json(str(k), v)
                              for k, v in (raw.get("incidents") or {}).items()})


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


def incident_commands(before: Mapping[str, OpenIncident], after: Mapping[str, OpenIncident],
                      at: datetime) -> list[CommandEvent]:
    """The noise commands that tell other engines which incidents started or stopped
    inhibiting (an engine derives its own from its groups' incident views)."""
    out = []
    for ident in sorted(set(before) | set(after)):
        inc = after.get(ident)
        if before.get(ident) == inc:
            continue
        args: dict[str, object] = {"id": ident, "open": inc is not None}
        if inc is not None:
            args.update(inc.to_json())
        out.append(CommandEvent.build(kind="command", command=INCIDENT_INHIBITS,
                                      group_key=NOISE_KEY, actor="router", at=at, args=args))
    return out
