"""The engine's state per group key, its inputs besides log events, and its settings.

Plain frozen data, no I/O. A `GroupState` is what the engine keeps for one group key: one
`AlertState` per alert (by `Alert.key`), what was last notified, and its timers as absolute
deadlines so they survive restarts and move with partition ownership.

Field names are short on purpose: state is serialised (changelog record / SQLite row) as JSON
with defaults left out, and the engine holds it in memory as those bytes, so every byte counts
when a million alerts are active. Times are float epoch seconds (UTC) for the same reason:
`t` fields are by the source's own clock, deadlines and `nt` by the engine's `now`.
Readable accessors are provided as properties.
"""

from __future__ import annotations

import math
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson
from pydantic import Field

from router.config import IncidentsConfig
from router.escalation import OnCallConfig
from router.incidents import Incident
from router.model import Alert, Frozen, Severity, Status, stable_id
from router.policy import SeverityPolicies, SeverityPolicy


class _Frozen(Frozen):
    """The engine's state records (see `Frozen.with_` for cheap copies)."""


def to_ts(value: datetime) -> float:
    """Epoch seconds of an aware datetime (naive ones are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def from_ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def default_group_key(alert: Alert) -> str:
    """The group key when no rule set one: alert name plus service."""
    return f"{alert.name}|{alert.service or ''}"


def group_key_of(alert: Alert) -> str:
    return alert.group_key or default_group_key(alert)


class Tick(_Frozen):
    """A timer of one group is due (group_wait, group_interval, repeat, flap settle, expiry)."""

    kind: Literal["tick"] = "tick"
    group_key: str


class EngineContext(_Frozen):
    """What `decide` needs besides state and event: policies and engine-wide defaults."""

    policies: SeverityPolicies = SeverityPolicies()
    # Severity of alerts no rule classified.
    default_severity: Severity = Severity.SEV3
    # Used when neither the alerts nor the severity policy name a receiver.
    default_receivers: tuple[str, ...] = ()
    # An alert with more than `flap_threshold` status changes within `flap_window` is flapping.
    flap_threshold: int = Field(default=4, ge=1)
    flap_window: timedelta = timedelta(minutes=30)
    # How long a resolved group with nothing pending is kept, so that late (stale) firings are
    # still recognised; after that it is deleted, which keeps the state store bounded.
    resolved_retention: timedelta = timedelta(hours=1)
    # Incidents (issue 6): None keeps the engine a plain alert router (unit tests of the
    # alert state machine); the factory always passes the config's section.
    incidents: IncidentsConfig | None = None
    oncall: OnCallConfig = OnCallConfig()

    def policy(self, severity: Severity) -> SeverityPolicy:
        return self.policies.for_severity(severity)


class AlertState(_Frozen):
    """One alert of a group."""

    a: Alert  # latest accepted version (status, severity, labels for the templates)
    t: float  # source-clock time of the latest accepted event (ends_at if resolved)
    n: bool = False  # included as firing in the last notification of this epoch
    h: tuple[float, ...] = ()  # source-clock times of recent status changes (flap history)

    @property
    def alert(self) -> Alert:
        return self.a

    @property
    def firing(self) -> bool:
        return self.a.status is Status.FIRING


# Flap phases of a group (GroupState.fl).
FLAP_NONE, FLAP_STARTED, FLAP_DAMPED, FLAP_STOPPED = 0, 1, 2, 3


class IncidentState(_Frozen):
    """One incident of a group: the read-side view `v` plus the engine's bookkeeping.

    Deadlines are absolute engine-time epoch seconds, so they survive restarts and fire once.
    """

    v: Incident  # the view the API reads (written to the incident view after each commit)
    dk: str  # vendor dedup key of the incident (the group's at opening; Slack threads by it)
    rc: tuple[str, ...] = ()  # the incident's receivers
    sp: bool = False  # published on the status page
    ep: str | None = None  # escalation policy being run
    pa: float | None = None  # paged at (step 0)
    ps: int = -1  # last escalation step paged
    pn: float | None = None  # next escalation step due
    pk: tuple[str, ...] = ()  # dedup keys of every page sent (ack/resolve reach each)
    ka: float | None = None  # acknowledge SLA deadline
    kr: float | None = None  # resolve SLA deadline
    pm: float | None = None  # post-mortem reminder due
    dx: float | None = None  # forget it here (the view stays in the incident view)
    q: int = 0  # command rounds: the sequence in notification ids
    lc: str | None = None  # fingerprint of the last update/page command (double clicks)
    lt: float | None = None  # its time

    @property
    def open(self) -> bool:
        return self.v.resolved_at is None

    def next_deadline(self) -> float | None:
        values = [v for v in (self.pn, self.ka, self.kr, self.pm, self.dx) if v is not None]
        return min(values) if values else None


INCIDENT_TIMERS = ("pn", "ka", "kr", "pm", "dx")


class GroupState(_Frozen):
    """Everything the engine knows about one group key."""

    k: str  # group key
    a: dict[str, AlertState] = Field(default_factory=dict)  # by Alert.key
    # Firing epoch: bumps when the group fires again after a notified resolution. `et` is the
    # source time (ms) that opened it, so a group deleted and re-created gets new dedup keys.
    e: int = 0
    et: int = 0
    q: int = 0  # notifications (rounds) emitted in this epoch: the sequence in ids
    ns: Status | None = None  # group status as last notified in this epoch; None: not yet
    nv: Severity | None = None  # group severity as last notified
    nt: float | None = None  # engine time of the last notification
    rc: tuple[str, ...] = ()  # receivers notified in this epoch (the resolution reaches all)
    # Timers, absolute engine-time deadlines.
    w: float | None = None  # group_wait: first notification of the epoch
    u: float | None = None  # group_interval: next batched update / resolution
    r: float | None = None  # repeat_interval: reminder while still firing
    f: float | None = None  # flapping settles when no status change happened by then
    x: float | None = None  # delete: resolved (or never notified) with nothing pending
    fl: int = FLAP_NONE  # flap phase: 0 none, 1 started, 2 damped (announced), 3 stopped
    d: int = 0  # duplicates counted
    o: int = 0  # stale (out-of-order) events counted
    # Incidents of this group, oldest first; at most the last one is open.
    i: tuple[IncidentState, ...] = ()
    ie: int = -1  # alert epoch that last opened an incident (-1: none)

    # --- readable accessors ---------------------------------------------------------------

    @property
    def group_key(self) -> str:
        return self.k

    @property
    def alerts(self) -> dict[str, AlertState]:
        return self.a

    @property
    def epoch(self) -> int:
        return self.e

    @property
    def dedup_key(self) -> str:
        """Vendor dedup key: the same for trigger, updates and resolution of one epoch."""
        return stable_id(self.k, f"{self.e}.{self.et}")

    @property
    def notified_status(self) -> Status | None:
        return self.ns

    @property
    def notified_severity(self) -> Severity | None:
        return self.nv

    @property
    def duplicates(self) -> int:
        return self.d

    @property
    def stale(self) -> int:
        return self.o

    @property
    def flapping(self) -> bool:
        return self.fl in (FLAP_STARTED, FLAP_DAMPED)

    @property
    def firing(self) -> bool:
        return any(s.firing for s in self.a.values())

    def next_deadline(self) -> float | None:
        """The earliest timer, epoch seconds; None when nothing is scheduled."""
        best: float | None = None
        for v in (self.w, self.u, self.r, self.f, self.x):
            if v is not None and (best is None or v < best):
                best = v
        for inc in self.i:
            v = inc.next_deadline()
            if v is not None and (best is None or v < best):
                best = v
        return best

    @property
    def incident(self) -> IncidentState | None:
        """The open incident of the group, if any."""
        if self.i and self.i[-1].open:
            return self.i[-1]
        return None

    # --- serialisation --------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Compact JSON (defaults left out): changelog value, SQLite blob, in-memory form."""
        return self.__pydantic_serializer__.to_json(self, exclude_defaults=True)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | str) -> GroupState:
        if isinstance(data, memoryview):
            data = data.tobytes()
        return cls.model_validate_json(data)


# --- stored form ----------------------------------------------------------------------------
#
# What the engine holds per group in memory, returns in `Batch.encoded` and the backends store
# (changelog value, SQLite blob): a frame of `to_bytes()` with the group's next deadline in
# front, so that a restore arms timers without parsing JSON, and the group key (stored beside
# it anyway: dict key, changelog record key, SQLite key) left out: every occurrence of it as a
# JSON string (`k`, the alerts' `group_key`, incident views) is a NUL byte, which JSON text
# never holds, so the substitution is exact whatever the key. Optionally deflated with a
# preset dictionary of the state's JSON vocabulary (small records compress about 3x, a plain
# zlib stream only 2x):
#
#   b"{..."                               to_bytes() as is (older stores; still read)
#   0x01 | float64 LE deadline | JSON*    FRAME_PLAIN (NaN: no timer armed; * key as NUL)
#   0x02 | float64 LE deadline | deflate  FRAME_DEFLATE: raw deflate of JSON*, `ZDICT_V1`
#
# ZDICT_V1 must never change (frames written with it must stay readable): a new dictionary
# takes a new tag.

FRAME_PLAIN = 1
FRAME_DEFLATE = 2
_HEAD = struct.Struct("<Bd")
_WBITS = -15
_MEM_LEVEL = 4
# Field names and common values, the most frequent last (deflate finds near ones cheaper).
ZDICT_V1 = (
    b'"pn":"pm":"dx":"lc":"lt":"ps":"pk":["sp":true,"ep":"resolved_at":"acknowledged_at":'
    b'"escalation_level":"postmortem_done":true,"root_cause":"mitigation":"commander":'
    b'"sla_breaches":["ack","resolve"],"pages":[{"at":"level":1,"targets":[],"key":"by":"router"'
    b'}],"page_keys":[],"updates":[],"status":"investigating","identified","monitoring",'
    b'"kind":"alert_resolved","text":" resolved"},{"at":"kind":"paged","severity_change",'
    b'"sla_breach","acknowledged","escalated","status_update","postmortem",'
    b'"value":"generator_url":"http://","dashboard_url":"https://","ends_at":"'
    b'"group_wait":"group_interval":"repeat_interval":"fl":1,"f":"d":"o":"x":"u":'
    b'"i":[{"v":{"id":"INC-","group_key":"","title":"","severity":"SEV1","channel":"#inc-",'
    b'"impact":"","service":"","team":"","alerts":["alertmanager:"],"opened_at":"",'
    b'"timeline":[{"at":"","kind":"opened","actor":"router","text":"opened by alerts: (SEV1)"},'
    b'{"at":"","kind":"alert_fired","actor":"alertmanager","text":" firing: "},'
    b'{"at":"","kind":"notified","actor":"router","text":"trigger sent to "}],'
    b'"details":{"dedup_key":"","receivers":[""],"started_at":"","alert_info":{"alertmanager:'
    b'":{"name":"","service":null,"started_at":"","ended_at":null}}}},"dk":"","rc":[""],'
    b'"ka":"kr":}],"ie":0}'
    b'{"k":"","a":{"alertmanager:":{"a":{"source":"alertmanager","fingerprint":"",'
    b'"status":"firing","name":"","labels":{"alertname":"","severity":"critical","warning",'
    b'"env":"prod","namespace":"","service":"","pod":"","instance":"","job":"","team":""},'
    b'"annotations":{"description":"","summary":"","runbook_url":"https://"},'
    b'"starts_at":"","received_at":"","severity":"SEV3","team":"","service":"",'
    b'"runbook_url":"https://","receivers":[""],"group_key":"","rule":""},"t":,"n":true,'
    b'"h":[]}},"e":1,"et":,"q":1,"ns":"firing","nv":"SEV3","nt":,"rc":[""],"w":,"r":'
)


def pack(state: GroupState, level: int = 0) -> bytes:
    """The stored form of `state` (stored under `state.k`): deflated at zlib `level` 1-9, 0
    keeps the JSON plain."""
    return frame(state.to_bytes(), state.next_deadline(), state.k, level)


def frame(data: bytes, deadline: float | None, key: str, level: int = 0) -> bytes:
    """The stored form of the `to_bytes()` JSON of group `key` whose next deadline is
    `deadline`."""
    when = math.nan if deadline is None else deadline
    body = data.replace(orjson.dumps(key), b"\x00")
    if level <= 0:
        return _HEAD.pack(FRAME_PLAIN, when) + body
    packer = _packer(level).copy()
    return _HEAD.pack(FRAME_DEFLATE, when) + packer.compress(body) + packer.flush()


_PACKERS: dict[int, zlib._Compress] = {}


def _packer(level: int) -> zlib._Compress:
    """A compressor primed with the dictionary: a copy of it skips hashing the dictionary."""
    packer = _PACKERS.get(level)
    if packer is None:
        packer = _PACKERS[level] = zlib.compressobj(
            min(level, 9), zlib.DEFLATED, _WBITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, ZDICT_V1)
    return packer


def unpacked(data: bytes | bytearray | memoryview, key: str) -> bytes:
    """The `to_bytes()` JSON inside a stored form (any of the three) of group `key`."""
    data = bytes(data)
    tag = data[0] if data else 0
    if tag == FRAME_DEFLATE:
        body = zlib.decompressobj(_WBITS, ZDICT_V1).decompress(data[_HEAD.size:])
    elif tag == FRAME_PLAIN:
        body = data[_HEAD.size:]
    else:
        return data
    return body.replace(b"\x00", orjson.dumps(key))


def unpack(data: bytes | bytearray | memoryview, key: str) -> GroupState:
    """`pack` reversed, for the group `key` it is stored under (plain JSON is read too)."""
    return GroupState.from_bytes(unpacked(data, key))


def packed_deadline(data: bytes | bytearray | memoryview) -> float | None:
    """The next deadline of a stored form, from its header (plain JSON: parsed)."""
    tag = data[0] if data else 0
    if tag in (FRAME_DEFLATE, FRAME_PLAIN):
        when: float = _HEAD.unpack_from(data)[1]
        return None if when != when else when  # NaN: none
    return _deadline_of_json(bytes(data))


_TIMERS = ("w", "u", "r", "f", "x")


def _deadline_of_json(data: bytes) -> float | None:
    # Cheaper than a full model validation (plain JSON from an older store).
    raw = orjson.loads(data)
    if not isinstance(raw, dict):
        raise ValueError("a group state must be a JSON object")
    values = [raw[k] for k in _TIMERS if raw.get(k) is not None]
    for inc in raw.get("i") or ():
        values.extend(inc[k] for k in INCIDENT_TIMERS if inc.get(k) is not None)
    return min(values) if values else None


def _day(at: datetime) -> str:
    """`YYYYMMDD` of the UTC day of `at` (naive: local time, as `astimezone` takes it)."""
    d = at.astimezone(UTC)
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


# The engine-wide incident counter is stored beside the group states under this key (a group
# key never starts with NUL), so it commits in the same transaction as the incidents it numbers.
IDS_KEY = "\x00incident-ids"


class IncidentIds:
    """Allocates `INC-YYYYMMDD-N`, sequential per UTC day, for one engine.

    Embedded backend: one engine, `stride=1, offset=0`, so N = 1, 2, 3, ...
    Kafka: one engine per partition p of P; N = seq * P + p + 1 (seq the partition's own
    per-day counter), so partitions never collide and ids need no coordination. They are
    unique and increase per partition, not dense across the cluster.
    """

    def __init__(self, stride: int = 1, offset: int = 0) -> None:
        self.stride = max(1, stride)
        self.offset = offset
        self.day = ""
        self.seq = 0
        # The day of the last `at` seen: a batch allocates every id at the same `now`.
        self._at: datetime | None = None
        self._at_day = ""

    def allocate(self, at: datetime) -> str:
        if at is self._at:
            day = self._at_day
        else:
            day = _day(at)
            self._at, self._at_day = at, day
        if day != self.day:
            self.day, self.seq = day, 0
        n = self.seq * self.stride + self.offset + 1
        self.seq += 1
        return f"INC-{day}-{n}"

    def snapshot(self) -> tuple[str, int]:
        return self.day, self.seq

    def restore(self, snapshot: tuple[str, int]) -> None:
        self.day, self.seq = snapshot

    def to_bytes(self) -> bytes:
        return f'{{"day":"{self.day}","seq":{self.seq}}}'.encode()

    def load(self, data: bytes | bytearray | memoryview | None) -> None:
        if data is None:
            self.day, self.seq = "", 0
            return
        raw = orjson.loads(bytes(data))
        self.day, self.seq = str(raw.get("day", "")), int(raw.get("seq", 0))
