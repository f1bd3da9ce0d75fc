"""An incident's history outside the group's hot state: its alerts, their details, its timeline.

Pure. Decisions only ever add to these (`observe`, `timeline.log`), never read them back, yet
they grow with every round of a busy group (a SEV2 group of churning pods carried ~70 timeline
entries and ~60 alert details after 30 minutes, two thirds of its state). So the engine keeps
them in an `IncidentRecord` beside the group and the group's incident holds a *hot* view:

- `timeline`: only the entries added since the record was last written (none once stored);
- `details.alert_info`: only the alerts updated since (absent once stored);
- `alerts`: the attached alerts still in the group's own alerts (whether one of them is
  attached is what the quiet entries ask), then the ones attached since.

`full_view(record, hot)` is the whole view the API reads, the same as if everything had stayed
in the state (timeline entries merged in time order, the details of at most `MAX_ALERTS`
alerts); `hot_view(full, live)` is what the state keeps of it; `record_of(full)` is what the
record keeps. A view with its history inside (a state stored before records existed) is a hot
view with everything still to add, so older states load as they are.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from router.engine.incidents.alerts import MAX_ALERTS, bounded
from router.engine.incidents.timeline import insert
from router.engine.state import IncidentRecord
from router.incidents import Incident

INFO = "alert_info"
EMPTY = IncidentRecord()


def pending(view: Incident) -> bool:
    """Has `view` anything its record does not hold yet?"""
    return bool(view.timeline) or INFO in view.details


def full_view(record: IncidentRecord | None, view: Incident) -> Incident:
    """The whole view: `record` with what the hot `view` gathered since it was written."""
    rec = record if record is not None else EMPTY
    if not pending(view) and not rec.alerts and rec.alert_info is None and not rec.timeline:
        return view
    keys = list(rec.alerts)
    known = set(keys)
    keys += [k for k in view.alerts if k not in known]
    raw = view.details.get(INFO)
    details: dict[str, Any] = dict(view.details)
    if rec.alert_info is not None or isinstance(raw, dict):
        info: dict[str, Any] = dict(rec.alert_info or {})
        if isinstance(raw, dict):
            info.update(raw)
        if len(keys) > MAX_ALERTS:
            keys, info = bounded(keys, info)
        details[INFO] = info
    timeline = insert(rec.timeline, list(view.timeline)) if view.timeline else rec.timeline
    return view.with_(alerts=tuple(keys), details=details, timeline=timeline)


def hot_view(full: Incident, live: Container[str]) -> Incident:
    """What a group's state keeps of its incident's `full` view (`live`: its alerts' keys)."""
    details = {k: v for k, v in full.details.items() if k != INFO}
    return full.with_(alerts=tuple(k for k in full.alerts if k in live), details=details,
                      timeline=())


def record_of(full: Incident) -> IncidentRecord:
    info = full.details.get(INFO)
    return IncidentRecord.build(alerts=full.alerts, timeline=full.timeline,
                                alert_info=dict(info) if isinstance(info, dict) else None)
