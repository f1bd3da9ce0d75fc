"""The incident inhibition rule. Pure.

An open incident at or above `incidents.inhibit_at` (SEV1 by default) for a service keeps the
firing alerts of that service that are less severe than the incident quiet (reason
`incident`, ref the incident id): they do not page while the incident is worked on. Each such
alert is listed on the incident's timeline instead (an `inhibited` command to the incident's
group), and when the incident closes, those still firing notify then, as for every other mute.

Which incidents inhibit is engine-wide state (`router.engine.noise.Noise.incidents`): the
engine derives it from the incident views its groups change, and the same fact reaches the
other engines as a noise command (`INCIDENT_INHIBITS`) where the log carries them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import orjson

from router.config import IncidentsConfig
from router.engine.incidents.formatting import ROUTER
from router.engine.incidents.timeline import TK, log
from router.engine.instant import Instant, utc
from router.engine.quiet import INCIDENT, Mute
from router.engine.state import GroupState, IncidentState
from router.incidents import Incident
from router.model import Alert, CommandEvent, Severity, default_group_key

# The command that lists an inhibited alert on the inhibiting incident's timeline.
INHIBITED = "inhibited"  # args: {"alert", "service", "severity", "group_key"}


class OpenIncident(NamedTuple):
    """An open incident that inhibits its service's less severe alerts."""

    id: str
    service: str
    severity: Severity
    group_key: str

    def to_json(self) -> dict[str, str]:
        return {"service": self.service, "severity": self.severity.value,
                "group_key": self.group_key}

    @classmethod
    def of_json(cls, incident_id: str, raw: Mapping[str, object]) -> OpenIncident:
        return cls(incident_id, str(raw["service"]), Severity(str(raw["severity"])),
                   str(raw["group_key"]))


def inhibits(view: Incident, cfg: IncidentsConfig | None) -> OpenIncident | None:
    """The incident as an inhibitor, or None when it does not inhibit (rule off, resolved,
    no service, or below `inhibit_at`)."""
    if (cfg is None or not cfg.inhibit_lower_severity or not view.open or not view.service
            or not view.severity.at_least(cfg.inhibit_at)):
        return None
    return OpenIncident(view.id, view.service, view.severity, view.group_key)


def _rank(inc: OpenIncident) -> tuple[int, str]:
    return inc.severity.rank, inc.id


@dataclass(frozen=True, slots=True)
class Inhibitors:
    """One service's inhibiting incidents as one engine knows them.

    An engine announces one incident per service to the others, its *lead*: the most severe
    of its own, kept while it stays open and most severe (so a storm of SEV1 incidents of one
    service is one announcement, not one per incident); when it closes the next in line (the
    most recent of the most severe) takes over. The muter works from the engine's own lead
    and the leads the other engines announced (`heard`, by their partition), most severe
    first."""

    own: Mapping[str, OpenIncident] = field(default_factory=dict)  # by id, oldest first
    lead: OpenIncident | None = None
    heard: Mapping[int, OpenIncident] = field(default_factory=dict)  # by origin partition
    in_force: tuple[OpenIncident, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        found = [self.lead] if self.lead is not None else []
        found += self.heard.values()
        object.__setattr__(self, "in_force", tuple(sorted(found, key=_rank)))

    def with_own(self, own: Mapping[str, OpenIncident]) -> Inhibitors:
        """With this engine's own incidents replaced, the lead following them."""
        return Inhibitors(own, _lead(own, self.lead), self.heard)

    def with_heard(self, origin: int, lead: OpenIncident | None) -> Inhibitors:
        heard = {k: v for k, v in self.heard.items() if k != origin}
        if lead is not None:
            heard[origin] = lead
        return Inhibitors(self.own, self.lead, dict(sorted(heard.items())))

    @property
    def empty(self) -> bool:
        return not self.own and not self.heard and self.lead is None

    def to_bytes(self) -> bytes | None:
        """The lead and what was heard (each own incident is a record of its own, so that a
        storm of them writes one small record per incident, not all of them every time);
        None when there is neither."""
        if self.lead is None and not self.heard:
            return None
        return orjson.dumps({
            "lead": _json(self.lead) if self.lead is not None else None,
            "heard": {str(k): _json(v) for k, v in self.heard.items()},
        })

    def loaded(self, data: bytes | bytearray | memoryview | None) -> Inhibitors:
        """With the stored lead and heard (None: neither) and the own incidents as they are."""
        if data is None:
            return Inhibitors(self.own)
        raw = orjson.loads(bytes(data))
        lead = raw.get("lead")
        heard = {int(k): _of_json(v) for k, v in raw["heard"].items()}
        return Inhibitors(self.own, _of_json(lead) if lead else None, heard)


def _json(inc: OpenIncident) -> dict[str, str]:
    return {"id": inc.id, **inc.to_json()}


def _of_json(raw: Mapping[str, object]) -> OpenIncident:
    return OpenIncident.of_json(str(raw["id"]), raw)


def _lead(own: Mapping[str, OpenIncident], current: OpenIncident | None) -> OpenIncident | None:
    """The lead among `own`: `current` (as it is now) while it is open and most severe, else
    the most recent of the most severe."""
    if not own:
        return None
    top = min(i.severity.rank for i in own.values())
    kept = own.get(current.id) if current is not None else None
    if kept is not None and kept.severity.rank == top:
        return kept
    return [i for i in own.values() if i.severity.rank == top][-1]


def own_updated(services: Mapping[str, Inhibitors], views: Iterable[Incident],
                cfg: IncidentsConfig | None) -> dict[str, Inhibitors] | None:
    """The services whose own inhibiting incidents `views` changed, with their new state
    (empty ones included, to be dropped); None when nothing changed. One copy per service
    and batch, however many of its incidents changed."""
    work: dict[str, dict[str, OpenIncident]] = {}
    for view in views:
        if not view.service:
            continue
        now = inhibits(view, cfg)
        own = work.get(view.service)
        if own is None:
            held = services.get(view.service)
            current = held.own if held is not None else {}
            if current.get(view.id) == now:
                continue
            own = work[view.service] = dict(current)
        if now is None:
            own.pop(view.id, None)
        else:
            own[view.id] = now
    if not work:
        return None
    empty = Inhibitors()
    return {svc: services.get(svc, empty).with_own(own) for svc, own in work.items()}


class IncidentMuter:
    """Alerts of a service with an inhibiting open incident, less severe than it, and not of
    that incident's own group."""

    __slots__ = ("by_service", "default")

    def __init__(self, incidents: Iterable[OpenIncident] = (),
                 default: Severity = Severity.SEV3, *,
                 services: Mapping[str, Inhibitors] | None = None) -> None:
        """From a list of inhibiting incidents (the read APIs), or from the engine's
        `services` (looked up as they are, not copied)."""
        by_service: dict[str, list[OpenIncident]] = {}
        for inc in sorted(incidents, key=_rank):
            by_service.setdefault(inc.service, []).append(inc)
        self.by_service: Mapping[str, Sequence[OpenIncident] | Inhibitors] = (
            services if services is not None
            else {k: tuple(v) for k, v in by_service.items()})
        self.default = default

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, IncidentMuter) and self.by_service == other.by_service
                and self.default == other.default)

    def __hash__(self) -> int:
        return hash(tuple(self.by_service))

    def mute(self, alert: Alert, now: float) -> Mute | None:
        service = alert.service or alert.labels.get("service")
        found = self.by_service.get(service) if service else None
        if isinstance(found, Inhibitors):
            found = found.in_force
        if not found:
            return None
        rank = (alert.severity or self.default).rank
        key = alert.group_key or default_group_key(alert)
        for inc in found:  # most severe first
            if rank > inc.severity.rank and key != inc.group_key:
                return Mute(INCIDENT, inc.id, None)  # lifts when the incident closes
        return None


def newly_inhibited(before: GroupState | None, after: GroupState | None
                    ) -> list[tuple[Alert, str]]:
    """The alerts of a group that became quiet by an incident in one step, with its id."""
    if after is None or after.quiet_until is None:
        return []
    out = []
    for key, st in after.alerts.items():
        if st.muted is None or not st.muted.startswith(INCIDENT + ":"):
            continue
        was = before.alerts.get(key) if before is not None else None
        if was is None or was.muted != st.muted:
            out.append((st.alert, st.muted.partition(":")[2]))
    return out


def note_command(alert: Alert, incident: OpenIncident, at: datetime) -> CommandEvent:
    """The command that lists `alert` on the timeline of the incident keeping it quiet."""
    return CommandEvent.build(
        kind="command", command=INHIBITED, incident_id=incident.id,
        group_key=incident.group_key, actor=ROUTER, at=at,
        args={"alert": alert.name, "service": alert.service or incident.service,
              "severity": alert.severity.value if alert.severity else None,
              "group_key": alert.group_key or default_group_key(alert)})


def note(inc: IncidentState, event: CommandEvent, now: Instant) -> IncidentState:
    """The `inhibited` command on its incident: one timeline entry, nobody notified."""
    args = event.args
    sev = f"{args['severity']} " if args.get("severity") else ""
    text = (f"{sev}alert {args.get('alert')} (group {args.get('group_key')}) inhibited by the "
            f"open {inc.view.severity.value} incident {inc.view.id} of service "
            f"{args.get('service')}: not paged while it is open")
    return log(inc, utc(event.at), TK.QUIETED, ROUTER, text, now)
