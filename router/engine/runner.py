"""The engine's step, one for both backends: decide the events taken from the log together with
every timer due (in the order of their times, whatever the batch), commit the decision and the
log position atomically, count it; when that fails, recover from what is durable so that the
same events are decided again.

A backend implements `EngineStore` for each engine it runs: the embedded backend for its one
engine over the SQLite log, Kafka for each owned partition (one engine per partition, each with
its own transactional producer). What stays with the backend is how events are taken (memory
and SQLite rows; a consumer group's fetch), what waits between steps, and how it restores.

Exactly once rests on the commit being all or nothing: a step whose commit raised left nothing
durable, the store rebuilds the engine from what is, and the events come again from the same
position, so a decision is neither lost nor made twice (decisions and ids are deterministic).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from router.engine.engine import Batch, Engine
from router.metrics import EngineMetrics
from router.model import Event

P = TypeVar("P", contravariant=True)  # a log position: a SQLite offset, a Kafka offset


class EngineStore(Protocol[P]):
    """What one engine's backend does for the step."""

    async def commit(self, batch: Batch, position: P | None) -> None:
        """Make `batch` (state changes, notifications, views) durable together with `position`
        (the log position after the events decided; None when only timers fired), in one
        atomic write, then tell whoever waits on it. Raises when nothing was written."""
        ...

    async def recover(self, error: Exception) -> None:
        """The step failed with `error` and nothing of it is durable: rebuild the engine from
        what is, so the same events are decided again (or stop deciding, e.g. when another
        owner fenced this one)."""
        ...


class Outcome(enum.Enum):
    COMMITTED = "committed"
    IDLE = "idle"  # nothing to commit: no events, and no due timer had anything to say
    FAILED = "failed"  # recovered; the events come again


async def step(engine: Engine, store: EngineStore[P], events: Sequence[Event],
               position: P | None, now: datetime, metrics: EngineMetrics) -> Outcome:
    """Decide `events` and fire every timer due by `now`, then commit with `position` (None:
    no events were taken from the log). Raises what the commit raised.

    The engine decides in the order of the events' recorded times, with each timer fired at
    its deadline between them (`Engine.apply`): a step's decisions do not depend on where the
    batch ends or on when the step runs, only on the events, their times, and what is due by
    `now`."""
    batch = engine.apply(events, now)
    if position is None and batch.empty:
        return Outcome.IDLE
    await store.commit(batch, position)
    metrics.events.inc(len(events))
    metrics.count(batch)
    return Outcome.COMMITTED


async def step_safely(engine: Engine, store: EngineStore[P], events: Sequence[Event],
                      position: P | None, now: datetime, metrics: EngineMetrics) -> Outcome:
    """`step`, and on any failure (cancellation aside) count an abort and let the store
    recover; the caller takes the events again from the position the store restored."""
    try:
        return await step(engine, store, events, position, now, metrics)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        metrics.aborts.inc()
        await store.recover(exc)
        return Outcome.FAILED
