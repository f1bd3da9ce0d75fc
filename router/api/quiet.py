"""Why alerts are quiet, as the read APIs show it: computed at read time from the silences the
engine holds, the config's windows, inhibition rules and calendars, and what fires now (like
Alertmanager's marker), in the engine's order of precedence."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from router.api.keys import RUNTIME
from router.backends.base import Backend
from router.backends.factory import quiet_of
from router.engine.incidents.inhibit import inhibits
from router.engine.noise import Noise
from router.engine.quiet import INCIDENT, INHIBITED, SILENCED, Mute, Quiet
from router.incidents import Incident
from router.model import Alert, Severity, Status
from router.noise.inhibit import InhibitRule, inhibited_by
from router.noise.muters import labels_of
from router.noise.silences import Silence, silences_for


async def open_incidents(backend: Backend, request: web.Request) -> list[Incident]:
    """The open incidents, for the incident inhibition rule (none when it is off)."""
    config = request.config_dict[RUNTIME].snapshot.config
    if not config.incidents.inhibit_lower_severity:
        return []
    # Only those that can inhibit (the most urgent come first): a read of a handful, not of
    # every open incident, on each alert list.
    at = config.incidents.inhibit_at
    counts = await backend.incident_counts("open")
    n = sum(c for sev, c in counts.items() if Severity(sev).at_least(at))
    return list(await backend.urgent_incidents(limit=n)) if n else []


def quiet_reasons(alerts: Iterable[Alert], silences: Iterable[Silence], request: web.Request,
                  now: datetime, incidents: Iterable[Incident] = ()) -> dict[str, dict[str, Any]]:
    """Why each quiet firing alert is quiet now, by alert key (absent: it is not):
    `silenced_by` (silence ids), `inhibited_by` (fingerprints of firing sources, or the id of
    the open incident keeping it quiet), and the first mute in the engine's order (`reason`,
    `ref`, `until`). Computed at read time like Alertmanager's marker; `incidents` are the
    open ones (`open_incidents`)."""
    config = request.config_dict[RUNTIME].snapshot.config
    alerts = list(alerts)
    silences = list(silences)
    found = (inhibits(v, config.incidents) for v in incidents)
    noise = Noise(silences={s.id: s for s in silences},
                  incidents={i.id: i for i in found if i is not None})
    quiet: Quiet = noise.quiet(quiet_of(config),
                               incidents=config.incidents.inhibit_lower_severity)
    firing = [(a, labels_of(a)) for a in alerts if a.status is Status.FIRING]
    # Only the alerts some rule's source side matches can inhibit: each target is tried
    # against those, not against everything that fires.
    sources = [(a, lb) for a, lb in firing
               if any(r.source_matchers.matches(lb) for r in config.inhibit_rules)]
    out: dict[str, dict[str, Any]] = {}
    ts = now.timestamp()
    for alert, labels in firing:
        silenced = list(silences_for(labels, silences, now))
        inhibitors = _inhibitors(labels, sources, config.inhibit_rules)
        mute: Mute | None = quiet.mute(alert, ts)
        if mute is not None and mute.reason == INHIBITED and not inhibitors:
            mute = None  # the engine's sources may lag the read side: go by what fires
        if mute is None and inhibitors:
            mute = Mute(INHIBITED, inhibitors[0], None)
        if mute is None and silenced:
            mute = Mute(SILENCED, silenced[0], None)
        if mute is None:
            continue
        if mute.reason == INCIDENT:
            inhibitors = [mute.ref]
        out[alert.key] = {
            "silenced_by": silenced, "inhibited_by": inhibitors,
            "reason": mute.reason, "ref": mute.ref,
            "until": (datetime.fromtimestamp(mute.until, UTC).isoformat()
                      if mute.until else None),
        }
    return out


def _inhibitors(labels: Mapping[str, str], firing: Sequence[tuple[Alert, Mapping[str, str]]],
                rules: Sequence[InhibitRule]) -> list[str]:
    if not rules:
        return []
    found = inhibited_by(labels, [lb for _, lb in firing], rules)
    if found is None:
        return []
    return [a.fingerprint for a, lb in firing if dict(lb) == found.source][:1]
