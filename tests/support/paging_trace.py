"""One generated trace of the paging model, run against a real backend.

`Driver` is what a backend test provides: append events, wait until the engine has decided
them, read every notification emitted so far and the incident views, restart the process's
backend. Time passes through the injected clock; a no-op command on the group wakes the
engine so that it decides at the new time. The same invariants as the engine's model-based
test (`tests.support.paging`) are checked after every step.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from router.incidents import Incident
from router.model import AlertEvent, CommandEvent, Notification, Severity, Status
from tests.support.clock import Clock
from tests.support.paging import history_problems, sorted_problems, step_problems
from tests.unit.engine.test_incidents import INCIDENTS, KEY, at, command, fire


@dataclass
class Driver:
    clock: Clock
    append: Callable[[list[AlertEvent | CommandEvent]], Awaitable[None]]
    notifications: Callable[[], Awaitable[list[Notification]]]
    incidents: Callable[[], Awaitable[list[Incident]]]
    restart: Callable[[], Awaitable[None]]


def steps(seed: int, count: int) -> list[tuple[str, str]]:
    """A random trace: (what, argument) pairs."""
    rnd = random.Random(seed)
    kinds = ["fire", "fire", "resolve", "resolve", "stale", "duplicate", "ack", "update",
             "resolve-cmd", "page", "time", "time", "time", "restart"]
    return [(rnd.choice(kinds), rnd.choice("ab")) for _ in range(count)] + [("quiet", "")]


async def run_trace(driver: Driver, seed: int, count: int = 30) -> list[str]:
    """Run the trace; the problems found (none when the promise is kept)."""
    rnd = random.Random(seed * 7919)
    minute = 0.0
    started: dict[str, float] = {}
    last: dict[str, AlertEvent] = {}
    seen = 0
    problems: list[str] = []
    for what, fp in steps(seed, count):
        events: list[AlertEvent | CommandEvent] = []
        views = await driver.incidents()
        latest = views[0].id if views else None
        if what == "fire":
            start = started.setdefault(fp, minute)
            last[fp] = fire(Severity.SEV1, fp, start)
            events = [last[fp]]
        elif what == "resolve":
            alert = fire(Severity.SEV1, fp, started.pop(fp, minute)).alert
            last[fp] = AlertEvent(alert=alert.replace(status=Status.RESOLVED,
                                                      ends_at=at(minute),
                                                      received_at=at(minute)))
            events = [last[fp]]
        elif what == "stale":
            events = [fire(Severity.SEV1, fp, minute - 120)]
        elif what == "duplicate" and fp in last:
            events = [last[fp]]
        elif what in ("ack", "update", "resolve-cmd", "page") and latest is not None:
            actor = rnd.choice(["api:ops", "slack:U1", "pagerduty:P1"])
            args: dict[str, object] = {
                "update": {"message": f"at {minute}"},
                "page": {"target": "dave", "target_kind": "user"},
            }.get(what, {})
            name = "resolve" if what == "resolve-cmd" else what
            events = [command(name, minute, latest, actor=actor, **args)]
        elif what in ("time", "quiet"):
            minute += rnd.choice([0.5, 1, 2, 5, 16, 31]) if what == "time" else 240
            driver.clock.set(minute)
            events = [command("noop", minute, actor="clock")]
        elif what == "restart":
            await driver.restart()
            continue
        if not events:
            continue
        await driver.append(events)
        emitted = await driver.notifications()
        views = await driver.incidents()
        problems += step_problems(emitted[seen:], views)
        seen = len(emitted)
        problems += history_problems(emitted, views, INCIDENTS.page_receivers)
        problems += sorted_problems(views)
        if what == "quiet" and not started and views and views[0].resolved_at is None:
            problems.append(f"{views[0].id}: every alert resolved, still {views[0].status}")
        if problems:
            return [f"step {what} {fp} at {minute}: {p}" for p in problems]
    return problems


__all__ = ["KEY", "Clock", "Driver", "run_trace"]
