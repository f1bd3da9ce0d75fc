"""Heartbeats (dead man's switches): a named beat that must keep arriving. Pure.

Fed by Alertmanager's always-firing `Watchdog` alert (an alert matching a heartbeat's matchers
is taken as its beat instead of being routed) or by `POST /api/v1/heartbeats/{name}`. Each beat
is a command on the heartbeat's own group (`heartbeat:<name>`); when none arrives within
`interval` + `grace`, the engine raises the router's own `HeartbeatMissing` alert in that group
(normal routing, incidents and paging follow), and resolves it at the next beat.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field, field_validator

from router.durations import Duration
from router.model import Alert, Frozen, Severity, Status
from router.noise.matchers import parsable

HEARTBEAT = "heartbeat"  # the command of a beat
PREFIX = "heartbeat:"  # group key prefix
ALERT_NAME = "HeartbeatMissing"


class Heartbeat(Frozen):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    interval: Duration = timedelta(minutes=1)
    grace: Duration = timedelta(minutes=2)
    # Alerts taken as its beat (Alertmanager's Watchdog), label matcher strings.
    matchers: tuple[str, ...] = ()
    severity: Severity = Severity.SEV2
    receivers: tuple[str, ...] = ()
    service: str | None = None
    summary: str = ""

    @property
    def group_key(self) -> str:
        return PREFIX + self.name

    def missing_alert(self, since: datetime, now: datetime) -> Alert:
        """The alert raised when beats stop (`since`: when the last one became overdue)."""
        summary = self.summary or (f"No heartbeat {self.name!r} since "
                                   f"{since:%Y-%m-%d %H:%M:%S} UTC: the alert pipeline "
                                   f"behind it may be down")
        return Alert.trusted(
            source="router", fingerprint=f"heartbeat-{self.name}", status=Status.FIRING,
            name=ALERT_NAME, labels={"alertname": ALERT_NAME, "heartbeat": self.name},
            annotations={"summary": summary}, starts_at=since, received_at=now,
            severity=self.severity, service=self.service, receivers=self.receivers,
            group_key=self.group_key, rule=f"heartbeat:{self.name}")

    def back_alert(self, missing: Alert, now: datetime) -> Alert:
        return missing.replace(status=Status.RESOLVED, ends_at=now, received_at=now)


    _parsable = field_validator("matchers")(parsable)
