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

A record is stored in chunks (`record_writes`, `read_record`; the forms are
`router.engine.codec`'s): its timeline grows up to `MAX_TIMELINE` alert entries, and
re-encoding all of it at each of the group's rounds cost 0.11 ms per round at 10 entries and
0.35 ms at 70 (issue 18's soak). Sealed chunks of `TIMELINE_CHUNK` entries are written once;
the head (alerts, details, the open tail of the timeline) at each change. An entry inserted
before the tail (timelines are in time order) rewrites the sealed chunks from its own on.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import Any

from router.engine.codec import head_chunks, pack_head, pack_record, unpack_record
from router.engine.incidents.alerts import MAX_ALERTS, bounded
from router.engine.incidents.timeline import insert
from router.engine.state import IncidentRecord
from router.incidents import Incident, TimelineEntry

INFO = "alert_info"
EMPTY = IncidentRecord()
# Timeline entries per sealed chunk of a stored record.
TIMELINE_CHUNK = 32


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


def chunk_key(ident: str, n: int) -> str:
    """Where sealed chunk `n` of incident `ident`'s record is stored, after `RECORD_PREFIX`
    (the head is under `ident`; an incident id never holds a NUL)."""
    return f"{ident}\x00{n}"


def ident_of(key: str) -> str:
    """The incident a stored key of its record (head or chunk, after the prefix) belongs to."""
    return key.partition("\x00")[0]


def read_record(ident: str, held: Mapping[str, bytes]) -> IncidentRecord | None:
    """Incident `ident`'s record from its stored forms in `held`, by key after the prefix."""
    head = held.get(ident)
    if head is None:
        return None
    chunks = []
    for n in range(head_chunks(head)):
        chunk = held.get(chunk_key(ident, n))
        if chunk is None:
            raise ValueError(f"incident {ident}: timeline chunk {n} of its record is missing")
        chunks.append(chunk)
    return unpack_record(head, chunks)


def record_writes(ident: str, old: IncidentRecord | None, new: IncidentRecord | None,
                  held: Mapping[str, bytes], level: int = 0,
                  size: int = TIMELINE_CHUNK) -> dict[str, bytes | None]:
    """What to store for incident `ident`'s record going from `old` (what `held` stores, by key
    after the prefix) to `new` (None: the record goes): the stored forms that change, by key
    (None: delete). Sealed chunks whose entries did not change are neither encoded nor
    written; `level` as `codec.pack_record`'s."""
    head = held.get(ident)
    was = head_chunks(head) if head is not None else 0
    out: dict[str, bytes | None] = {}
    if new is None:
        if head is not None:
            out[ident] = None
        out.update((chunk_key(ident, n), None) for n in range(was))
        return out
    timeline = new.timeline
    sealed = len(timeline) // size
    same = _common(old.timeline if old is not None and head is not None else (), timeline)
    for n in range(sealed):
        if n < was and (n + 1) * size <= same:
            continue  # stored, and its entries are the same
        key = chunk_key(ident, n)
        chunk = pack_record(IncidentRecord.build(timeline=timeline[n * size:(n + 1) * size]),
                            level)
        if held.get(key) != chunk:
            out[key] = chunk
    out.update((chunk_key(ident, n), None) for n in range(sealed, was))
    data = pack_head(new.with_(timeline=timeline[sealed * size:]), sealed, level)
    if data != head:
        out[ident] = data
    return out


def _common(a: Sequence[TimelineEntry], b: Sequence[TimelineEntry]) -> int:
    """How many entries `a` and `b` begin with alike (entries kept from a decoded record are
    the same objects: equality only where they are not)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and (a[i] is b[i] or a[i] == b[i]):
        i += 1
    return i
