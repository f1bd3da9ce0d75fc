"""The engine's cross-group noise state: silences, and the firing alerts that may inhibit
others. Pure.

Both reach every engine as commands on the log under NOISE_KEY (the Kafka log writes them to
every partition), so each partition's engine holds the whole set, stores it beside its groups
(committed with them), and a new owner of a partition restores it. Applying the same commands
in the same order gives the same state everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

import orjson

from router.engine.quiet import Muter, Quiet
from router.model import Alert, AlertEvent, CommandEvent, Status
from router.noise.heartbeats import HEARTBEAT, Heartbeat
from router.noise.inhibit import InhibitRule
from router.noise.muters import InhibitMuter, SilenceMuter, labels_of, parsed_matchers
from router.noise.silences import Silence

# Where the noise state is stored beside the group states; also the log key of noise commands
# (a group key never starts with NUL).
NOISE_KEY = "\x00noise"
SILENCE = "silence"  # args: {"silence": <Silence JSON>}; set, replacing the one of its id
INHIBIT_SOURCE = "inhibit_source"  # args: {"key": alert key, "labels": {...}, "firing": bool}
# Expired silences are kept this long (Alertmanager's default --data.retention, 120h).
SILENCE_RETENTION = timedelta(hours=120)


@dataclass(frozen=True, slots=True)
class Noise:
    silences: Mapping[str, Silence] = field(default_factory=dict)
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # firing inhibitors

    def applied(self, event: CommandEvent) -> Noise:
        """This state after one noise command (unknown commands change nothing)."""
        args = event.args
        if event.command == SILENCE:
            silence = Silence.model_validate(args.get("silence"))
            kept = {k: s for k, s in self.silences.items()
                    if s.ends_at >= event.at - SILENCE_RETENTION}
            return replace(self, silences={**kept, silence.id: silence})
        if event.command == INHIBIT_SOURCE:
            key = str(args.get("key", ""))
            labels = {str(k): str(v) for k, v in dict(args.get("labels") or {}).items()}
            sources = dict(self.sources)
            if args.get("firing"):
                if sources.get(key) == labels:
                    return self
                sources[key] = labels
            elif sources.pop(key, None) is None:
                return self
            return replace(self, sources=sources)
        return self

    def quiet(self, base: Quiet) -> Quiet:
        """The config's muters with the silences in front and the inhibitors' sources in."""
        if not self.silences and not self.sources:
            return base
        muters: list[Muter] = [SilenceMuter(self.silences.values())] if self.silences else []
        for m in base.muters:
            if isinstance(m, InhibitMuter):
                m = InhibitMuter(m.rules, self.sources.values())
            muters.append(m)
        return Quiet(muters)

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "silences": [s.model_dump(mode="json") for s in self.silences.values()],
            "sources": self.sources,
        })

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | None) -> Noise:
        if data is None:
            return cls()
        raw = orjson.loads(bytes(data))
        silences = [Silence.model_validate(s) for s in raw.get("silences") or ()]
        return cls(silences={s.id: s for s in silences},
                   sources={str(k): dict(v) for k, v in (raw.get("sources") or {}).items()})


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
