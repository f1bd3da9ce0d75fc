"""The engine's state per group key, its inputs besides log events, and its settings.

Plain frozen data, no I/O. A `GroupState` is what the engine keeps for one group key: one
`AlertState` per alert (by `Alert.key`), what was last notified, and its timers as absolute
deadlines so they survive restarts and move with partition ownership.

Fields have readable names in code; their aliases are the short names of the stored form
(`router.engine.codec`: compact JSON with defaults left out, held in memory and written to the
changelog / SQLite row), where every byte counts when a million alerts are active. Times are
float epoch seconds (UTC): `time` fields by the source's own clock, deadlines and `notified_at`
by the engine's `now`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import ConfigDict, Field

from router.config import IncidentsConfig
from router.engine.instant import from_ts, to_ts
from router.engine.quiet import NO_QUIET, Quiet
from router.escalation import OnCallConfig
from router.incidents import Incident, IncidentStatus, TimelineEntry
from router.model import Alert, Frozen, Severity, Status, default_group_key, stable_id
from router.noise.digest import DigestConfig
from router.noise.heartbeats import Heartbeat
from router.policy import SeverityPolicies, SeverityPolicy

__all__ = ["default_group_key", "from_ts", "to_ts"]  # re-exported for older imports


class _Stored(Frozen):
    """State records: readable names in code, short aliases in the stored JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)


def group_key_of(alert: Alert) -> str:
    return alert.group_key or default_group_key(alert)


class Tick(Frozen):
    """A timer of one group is due (group_wait, group_interval, repeat, flap settle, expiry)."""

    kind: Literal["tick"] = "tick"
    group_key: str


class EngineContext(Frozen):
    """What `decide` needs besides state and event: policies and engine-wide defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

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
    # Incidents: None keeps the engine a plain alert router (unit tests of the alert state
    # machine); the factory always passes the config's section.
    incidents: IncidentsConfig | None = None
    oncall: OnCallConfig = OnCallConfig()
    # Silences, maintenance windows, inhibition, business hours (`router.engine.quiet`).
    quiet: Quiet = NO_QUIET
    # Chat receivers that get a quiet post when business hours defer an alert
    # (`router.engine.deferred`; empty: `business_hours.chat_when_deferred: none`).
    deferred_chat: frozenset[str] = frozenset()
    # Severities routed away from paging (`SeverityPolicy.route`): the daily digest's
    # schedule and receivers, and the receivers that file tickets.
    digest: DigestConfig = DigestConfig()
    ticket_receivers: tuple[str, ...] = ()
    # A live group keeps the alerts whose resolution is behind it only as their time and flap
    # history (`GroupState.gone`); off, it keeps them whole for `resolved_retention` (the
    # Kafka backend, whose alerts view is written from the states).
    compact_resolved: bool = True
    # Dead man's switches by name (`router.noise.heartbeats`).
    heartbeats: dict[str, Heartbeat] = Field(default_factory=dict)

    def policy(self, severity: Severity) -> SeverityPolicy:
        return self.policies.for_severity(severity)


class AlertState(_Stored):
    """One alert of a group."""

    alert: Alert = Field(alias="a")  # latest accepted version
    time: float = Field(alias="t")  # source-clock time of the latest accepted event
    # Included as firing in the last notification of this epoch.
    notified: bool = Field(default=False, alias="n")
    # Source-clock times of recent status changes (flap history).
    changes: tuple[float, ...] = Field(default=(), alias="h")
    # Why it is kept quiet ("<reason>:<ref>", `router.engine.quiet`); None: it is not.
    muted: str | None = Field(default=None, alias="m")

    @property
    def firing(self) -> bool:
        return self.alert.status is Status.FIRING


# Flap phases of a group (GroupState.flap).
FLAP_NONE, FLAP_STARTED, FLAP_DAMPED, FLAP_STOPPED = 0, 1, 2, 3


class IncidentState(_Stored):
    """One incident of a group: the read-side view plus the engine's bookkeeping.

    Deadlines are absolute engine-time epoch seconds, so they survive restarts and fire once.
    """

    view: Incident = Field(alias="v")  # what the API reads (written after each commit)
    # Vendor dedup key of the incident: the group epoch's at opening (or reopening); group
    # notifications carry it while the incident is open, Slack threads by it.
    dedup_key: str = Field(alias="dk")
    receivers: tuple[str, ...] = Field(default=(), alias="rc")
    on_statuspage: bool = Field(default=False, alias="sp")
    escalation_policy: str | None = Field(default=None, alias="ep")  # the policy being run
    paged_at: float | None = Field(default=None, alias="pa")  # escalation step 0
    page_step: int = Field(default=-1, alias="ps")  # last escalation step paged
    next_page: float | None = Field(default=None, alias="pn")  # next escalation step due
    # Dedup keys of the pages not yet resolved (acknowledge / resolve reach each).
    page_keys: tuple[str, ...] = Field(default=(), alias="pk")
    ack_due: float | None = Field(default=None, alias="ka")  # acknowledge SLA deadline
    resolve_due: float | None = Field(default=None, alias="kr")  # resolve SLA deadline
    postmortem_due: float | None = Field(default=None, alias="pm")  # reminder due
    forget_at: float | None = Field(default=None, alias="dx")  # the view stays in the store
    rounds: int = Field(default=0, alias="q")  # command rounds: the sequence in ids
    # Fingerprint and time of the last update/page command (double clicks).
    last_command: str | None = Field(default=None, alias="lc")
    last_command_at: float | None = Field(default=None, alias="lt")
    # The incident process: an update is due (reminder), the acknowledgement times out (pages
    # again), the incident resolves itself when idle; `cycle` counts re-pages after a timeout.
    update_due: float | None = Field(default=None, alias="ud")
    ack_expires: float | None = Field(default=None, alias="ax")
    idle_due: float | None = Field(default=None, alias="iz")
    cycle: int = Field(default=0, alias="cy")
    actions_due: float | None = Field(default=None, alias="ad")  # an open action item is late
    postmortem_soon: float | None = Field(default=None, alias="pw")  # its deadline nears
    # The incident's Slack channel (incidents.slack_channels): asked for, when to archive it,
    # archived (a bot cannot unarchive), and who was asked into it.
    channel_open: bool = Field(default=False, alias="co")
    archive_due: float | None = Field(default=None, alias="ca")
    channel_archived: bool = Field(default=False, alias="cz")
    invited: tuple[str, ...] = Field(default=(), alias="ci")

    @property
    def open(self) -> bool:
        return self.view.open

    @property
    def declared(self) -> bool:
        """Opened by a person (`declare`), not by alerts: only a person resolves it."""
        return self.view.group_key.startswith(MANUAL_PREFIX)

    @property
    def status(self) -> IncidentStatus:
        return self.view.status

    def next_deadline(self) -> float | None:
        best: float | None = None
        for v in (self.next_page, self.ack_due, self.resolve_due, self.postmortem_due,
                  self.forget_at, self.update_due, self.ack_expires, self.idle_due,
                  self.actions_due, self.postmortem_soon, self.archive_due):
            if v is not None and (best is None or v < best):
                best = v
        return best


class IncidentRecord(_Stored):
    """What an incident's view accumulates, kept out of the group's hot state: its alerts,
    their details (`details.alert_info`) and its timeline. The engine holds it beside the
    groups (`Engine`, stored under `RECORD_PREFIX` + incident id) and writes it only when it
    changes; decisions never read it, so a group decodes and encodes only what they need
    (`router.engine.incidents.record`)."""

    alerts: tuple[str, ...] = Field(default=(), alias="a")
    alert_info: dict[str, object] | None = Field(default=None, alias="i")
    timeline: tuple[TimelineEntry, ...] = Field(default=(), alias="t")

    def to_bytes(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self, exclude_defaults=True, by_alias=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> IncidentRecord:
        return cls.model_validate_json(data)


# Where incident records are stored beside the groups (a group key never starts with NUL).
RECORD_PREFIX = "\x00incident:"


# Group keys of hand-declared incidents.
MANUAL_PREFIX = "manual:"
# Short names of the incident timers in the stored form (read without a full decode).
INCIDENT_TIMERS = ("pn", "ka", "kr", "pm", "dx", "ud", "ax", "iz", "ad", "pw", "ca")


class GroupState(_Stored):
    """Everything the engine knows about one group key."""

    key: str = Field(alias="k")
    alerts: dict[str, AlertState] = Field(default_factory=dict, alias="a")  # by Alert.key
    # Firing epoch: bumps when the group fires again after a notified resolution.
    # `epoch_time` is the source time (ms) that opened it, so a group deleted and re-created
    # gets new dedup keys.
    epoch: int = Field(default=0, alias="e")
    epoch_time: int = Field(default=0, alias="et")
    sequence: int = Field(default=0, alias="q")  # notification rounds of this epoch (in ids)
    # Group status / severity as last notified in this epoch; None: not yet.
    notified_status: Status | None = Field(default=None, alias="ns")
    notified_severity: Severity | None = Field(default=None, alias="nv")
    notified_at: float | None = Field(default=None, alias="nt")  # engine time
    # Receivers notified in this epoch (the resolution reaches all).
    receivers: tuple[str, ...] = Field(default=(), alias="rc")
    # Timers, absolute engine-time deadlines.
    wait_until: float | None = Field(default=None, alias="w")  # group_wait: first notification
    update_at: float | None = Field(default=None, alias="u")  # group_interval: next update
    repeat_at: float | None = Field(default=None, alias="r")  # repeat_interval reminder
    flap_settles: float | None = Field(default=None, alias="f")  # no status change by then
    expires: float | None = Field(default=None, alias="x")  # delete: quiet, nothing pending
    quiet_until: float | None = Field(default=None, alias="qu")  # a mute is looked at again
    heartbeat_due: float | None = Field(default=None, alias="hb")  # the next beat is late then
    flap: int = Field(default=FLAP_NONE, alias="fl")  # 0 none, 1 started, 2 damped, 3 stopped
    duplicates: int = Field(default=0, alias="d")  # events suppressed as duplicates
    stale: int = Field(default=0, alias="o")  # out-of-order events dropped
    # Alerts whose resolution is behind them (notified, or never notified as firing), kept
    # as `(time, *changes)` only until `resolved_retention` has passed: enough to drop a late
    # firing as stale and to go on counting flaps, without carrying the whole alert through
    # every decision of a busy group (`decide._compact`: at the end of the timed step whose
    # round announced the resolution, or of the next timed step).
    gone: dict[str, tuple[float, ...]] = Field(default_factory=dict, alias="g")
    # Incidents of this group, oldest first; at most the last one is open.
    incidents: tuple[IncidentState, ...] = Field(default=(), alias="i")
    incident_epoch: int = Field(default=-1, alias="ie")  # epoch that last opened one

    @property
    def dedup_key(self) -> str:
        """Vendor dedup key of the epoch: the same for trigger, updates and resolution."""
        return stable_id(self.key, f"{self.epoch}.{self.epoch_time}")

    @property
    def flapping(self) -> bool:
        return self.flap in (FLAP_STARTED, FLAP_DAMPED)

    @property
    def firing(self) -> bool:
        return any(s.firing for s in self.alerts.values())

    @property
    def incident(self) -> IncidentState | None:
        """The open incident of the group, if any (only the last one can be open)."""
        if self.incidents and self.incidents[-1].open:
            return self.incidents[-1]
        return None

    def next_deadline(self) -> float | None:
        """The earliest timer, epoch seconds; None when nothing is scheduled."""
        best: float | None = None
        for v in (self.wait_until, self.update_at, self.repeat_at, self.flap_settles,
                  self.expires, self.quiet_until, self.heartbeat_due):
            if v is not None and (best is None or v < best):
                best = v
        for inc in self.incidents:
            v = inc.next_deadline()
            if v is not None and (best is None or v < best):
                best = v
        return best

    def to_bytes(self, *, gone: bool = True) -> bytes:
        """Compact JSON, short names, defaults left out (see `router.engine.codec`); without
        `gone` if not `gone` (the stored form keeps it apart)."""
        return self.__pydantic_serializer__.to_json(
            self, exclude_defaults=True, by_alias=True, exclude=None if gone else {"gone"})

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | str) -> GroupState:
        if isinstance(data, memoryview):
            data = data.tobytes()
        return cls.model_validate_json(data)
