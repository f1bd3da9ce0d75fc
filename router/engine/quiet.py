"""Why a firing alert is kept quiet now, and until when. Pure.

The engine asks `Quiet.mute(alert, now)` for every firing alert of a group it decides: a muted
alert is neither firing nor resolved for notifications (Alertmanager's mute stage): it is not
paged, announced, reminded of or escalated, and a group whose firing alerts are all muted does
not open an incident. When the mute lifts (a silence or maintenance window ends, business hours
open, the inhibiting alert resolves) the alert notifies then, if it still fires. `until` is
when to look again; the group's `quiet_until` deadline wakes it.

The muters are small objects with one method, so that the rules behind them (silences from the
log, maintenance windows and calendars from the config, inhibition rules with the firing source
alerts) live in their own modules (`router.noise`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from router.model import Alert

SILENCED = "silenced"
MAINTENANCE = "maintenance"
INHIBITED = "inhibited"
INCIDENT = "incident"  # an open incident of the service (`router.engine.incidents.inhibit`)
DEFERRED = "deferred"
REASONS = (SILENCED, MAINTENANCE, INHIBITED, INCIDENT, DEFERRED)


class Mute(NamedTuple):
    reason: str  # one of REASONS
    ref: str  # the silence id, window name, inhibiting alert, incident id, or calendar
    until: float | None  # epoch seconds to look again; None: an event lifts it


class Muter(Protocol):
    def mute(self, alert: Alert, now: float) -> Mute | None: ...


class Quiet:
    """The muters in force, in order of precedence (the first that mutes names the reason).
    Immutable; a plain class, not a dataclass, so that the engine's context holds it as is."""

    __slots__ = ("muters",)

    def __init__(self, muters: Sequence[Muter] = ()) -> None:
        self.muters: tuple[Muter, ...] = tuple(muters)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quiet) and self.muters == other.muters

    def __hash__(self) -> int:
        return hash(self.muters)

    def __repr__(self) -> str:
        return f"Quiet({list(self.muters)!r})"

    @property
    def empty(self) -> bool:
        return not self.muters

    def mute(self, alert: Alert, now: float) -> Mute | None:
        for muter in self.muters:
            found = muter.mute(alert, now)
            if found is not None:
                return found
        return None


NO_QUIET = Quiet()
