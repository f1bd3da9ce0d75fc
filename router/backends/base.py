"""The small interfaces both backends (embedded SQLite, Kafka) implement."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from router.backends.filters import AlertField, AlertQuery, LabelTest
from router.backends.pages import Page
from router.delivery.outbox import DeadLetters, Outbox
from router.delivery.records import DeliveryStore
from router.engine.state import EngineContext
from router.incidents import Incident
from router.model import Alert, AlertEvent, AlertsEvent, CommandEvent
from router.noise.silences import Silence

LogEvent = AlertEvent | AlertsEvent | CommandEvent


class LogUnavailable(Exception):
    """The log cannot take the events now; intake answers 503 with Retry-After.

    `maybe_stored`: the log may still have them (a broker that did not acknowledge in time can
    take them later): a retry is then a duplicate, which the engine recognises.
    """

    def __init__(self, message: str, *, maybe_stored: bool = False) -> None:
        super().__init__(message)
        self.maybe_stored = maybe_stored


class StoreUnavailable(Exception):
    """A backend's storage cannot be reached or used (a command line tool reports it)."""


class Log(Protocol):
    """Intake's only dependency: append events durably, keyed by `model.event_key`.

    Returns only once every event is durable (SQLite commit, or broker ack with acks=all);
    raises LogUnavailable otherwise, in which case none of them may be reported as accepted.
    """

    async def append(self, events: Sequence[LogEvent]) -> None: ...


class EngineHandle(Protocol):
    """What the app needs of a backend's engine runner."""

    on_outbox: Callable[[], None]

    def set_context(self, context: EngineContext) -> None:
        """Apply a reloaded severity policy to future decisions."""
        ...

    async def drained(self) -> None:
        """Until every event appended so far by this process has been decided (tests)."""
        ...


class DeliveryProgress(Protocol):
    """What a backend may watch of delivery (the Dispatcher): how much waits, and when a send
    is done."""

    on_done: Callable[[], None]

    @property
    def backlog(self) -> int: ...


class Backend(Protocol):
    """One pipeline's storage: the log intake appends to, the engine consuming it, the outbox
    and dead letters delivery drains, delivery records, and the read side of current alerts."""

    @property
    def log(self) -> Log: ...

    @property
    def outbox(self) -> OutboxStore: ...

    @property
    def records(self) -> DeliveryStore: ...

    @property
    def engine(self) -> EngineHandle: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def watch_delivery(self, delivery: DeliveryProgress) -> None:
        """Delivery of this backend's outbox runs in `delivery`: the intake gate may watch its
        backlog and look again when a send is done. A no-op for a backend whose outbox
        measures that itself."""
        ...

    async def ready(self) -> bool: ...

    async def current_alerts(
        self, status: str | None = None, source: str | None = None, limit: int = 1000
    ) -> list[Alert]: ...

    async def incidents(self, status: str | None = None, limit: int = 200,
                        group_key: str | None = None) -> list[Incident]:
        """The incident view, newest (by opened_at) first. `status`: an `IncidentStatus`
        value, or "open" for every unresolved one; `group_key`: only that group's (e.g. the
        `manual:<uuid>` key of a declare, to learn the id the engine gave it)."""
        ...

    async def incident(self, incident_id: str) -> Incident | None: ...

    async def incident_page(self, status: str | None = None, group_key: str | None = None,
                            limit: int = 100, cursor: str | None = None) -> Page[Incident]:
        """One page of `incidents` (same filters), newest (opened_at, id) first; `cursor` is
        the previous page's `next_cursor` (raises `InvalidCursor` for anything else)."""
        ...

    async def alert_page(self, status: str | None = None, source: str | None = None,
                         limit: int = 100, cursor: str | None = None) -> Page[Alert]:
        """One page of `current_alerts` (same filters), latest (event_time, key) first."""
        ...

    async def silences(self) -> list[Silence]:
        """Every silence the engine holds (expired ones for their retention too)."""
        ...

    # --- the console's filtered and summary reads (bounded, whatever the volume) ---------

    async def alert(self, key: str) -> Alert | None:
        """The current alert `<source>:<fingerprint>`, if there is one."""
        ...

    async def alert_search(self, query: AlertQuery, limit: int = 100,
                           cursor: str | None = None) -> Page[Alert]:
        """One page of the current alerts `query` keeps, ordered and paged as `alert_page`
        (whose cursors it shares); `total` counts every match."""
        ...

    async def alert_counts(self, by: AlertField, query: AlertQuery) -> dict[str, int]:
        """How many current alerts `query` keeps, by their value of `by` ("" for none)."""
        ...

    async def alerts_matching(self, query: AlertQuery, keeps: LabelTest,
                              limit: int = 100) -> Page[Alert]:
        """The current alerts `query` keeps whose labels as silences see them (`labels_of`)
        pass `keeps`, latest (event_time, key) first: the first `limit` of them, `total`
        counting all (no cursor). `keeps` sees only labels, so the store reads just those of
        each alert and decodes only the ones it returns (a regex matcher over every alert)."""
        ...

    async def urgent_incidents(self, limit: int = 100, offset: int = 0) -> list[Incident]:
        """Open incidents, most urgent first: worst severity, then the longest open (then
        id); at most `limit`, after the first `offset` of them."""
        ...

    async def incident_counts(self, status: str | None = None) -> dict[str, int]:
        """How many incidents (`status` as in `incidents`) there are, by severity."""
        ...


class OutboxStore(Outbox, DeadLetters, Protocol):
    """Outbox and dead letters, from one backend object."""
