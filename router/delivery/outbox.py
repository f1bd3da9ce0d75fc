"""The interfaces the backends implement for delivery, and a real in-memory one.

Lifecycle of an outbox item: the engine commits it (pending) -> the Dispatcher takes it via
`pending()` -> `mark_delivered()` after the vendor accepted it, or `dead_letter()` when it
cannot be delivered. `DeadLetters.replay()` puts parked items back as pending, whole incidents
at a time so their order survives.

Backends: SQLite (tables `outbox`, `dead_letters`) and Kafka (topics `<prefix>.notifications`,
`<prefix>.notifications-dlq`). `MemoryOutbox` is the reference behaviour both must match.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from router.delivery.records import DeliveryStore
from router.model import Notification, utcnow


class OutboxItem(BaseModel):
    """One notification waiting for delivery. `seq` grows with every enqueue (and replay)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    seq: int
    notification: Notification

    @property
    def receiver(self) -> str:
        return self.notification.receiver

    @property
    def lane(self) -> tuple[str, str]:
        """Items of one lane are delivered strictly in `seq` order."""
        return (self.notification.receiver, self.notification.group_key)


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str  # the outbox item id
    seq: int  # the item's seq when it was parked: replay keeps this order
    notification: Notification
    reason: str  # redacted, human-readable
    failed_at: datetime

    @property
    def receiver(self) -> str:
        return self.notification.receiver


class Outbox(Protocol):
    async def pending(self, limit: int, after: int | None = None) -> list[OutboxItem]:
        """Up to `limit` undelivered items with `seq > after`, oldest first.

        `after` is the highest seq the caller has already taken; a backend with its own cursor
        (a Kafka consumer) may ignore it and return only records it has not handed out yet.
        """
        ...

    async def mark_delivered(self, ids: Sequence[str]) -> None:
        """The vendor accepted these; never hand them out again."""
        ...

    async def dead_letter(self, item: OutboxItem, reason: str) -> None:
        """Move the item from the outbox to the dead-letter store, atomically."""
        ...


class DeadLetters(Protocol):
    async def list(self, receiver: str | None = None) -> list[DeadLetter]:
        """Parked items, oldest first, optionally for one receiver."""
        ...

    async def replay(self, id: str | None = None, receiver: str | None = None) -> int:
        """Put parked items back into the outbox; returns how many.

        `id`: that item and every later dead letter of the same (receiver, group key), so an
        incident's messages go out again in order. `receiver`: all of that receiver's. Neither:
        everything. Replayed items get new, higher seqs in their original order.
        """
        ...

    async def holds(self, receiver: str, group_key: str) -> bool:
        """True while a dead letter of this lane is parked: later items must park behind it."""
        ...


@runtime_checkable
class RecordingOutbox(Protocol):
    """An outbox that writes the delivery record and the delivered mark in one transaction.

    Then there is no moment in which an item is gone from the outbox without its record, or
    recorded and still pending: the Dispatcher uses it instead of `DeliveryStore.record` plus
    `Outbox.mark_delivered` when `records_into(store)` says the records land in `store`.
    """

    def records_into(self, store: DeliveryStore) -> bool:
        """True when `mark_delivered_recorded` writes the records `store` reads."""
        ...

    async def mark_delivered_recorded(self, item_id: str, notification_id: str,
                                      receiver: str) -> None:
        """`store.record(notification_id, receiver)` and `mark_delivered([item_id])`, atomically."""
        ...


@dataclass(frozen=True)
class Released:
    """What the Dispatcher did when it gave items up: sends in flight it let finish (delivered
    and recorded), and sends the grace period cut off (going on unrecorded: the next owner, which
    has not seen their record, may send them too)."""

    finished: int
    cut_off: int


Release = Callable[[Collection[str], float], Awaitable[Released]]


@runtime_checkable
class HandingOverOutbox(Protocol):
    """An outbox whose items can move to another process while the Dispatcher holds them: a
    Kafka outbox partition revoked in a consumer-group rebalance.

    Before they move, the outbox awaits `release(item_ids, grace)`: the Dispatcher starts no
    send of those items any more, and returns once its sends of them in flight finished and
    were recorded (or `grace` seconds passed). The next owner reads the records before it
    takes the items, so what was sent here is not sent again there.
    """

    def release_to(self, release: Release) -> None:
        """Call `release` before items move away (the Dispatcher registers itself here)."""
        ...


class MemoryOutbox:
    """Outbox and DeadLetters in memory: for tests, dry runs and as the reference semantics."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self._pending: dict[str, OutboxItem] = {}
        self._dead: dict[str, DeadLetter] = {}
        self.delivered: list[str] = []
        self._changed = asyncio.Event()

    def add(self, n: Notification) -> OutboxItem:
        """What the engine's commit does: enqueue a notification (id = notification id)."""
        item = OutboxItem(id=n.id, seq=next(self._seq), notification=n)
        self._pending[item.id] = item
        return item

    async def pending(self, limit: int, after: int | None = None) -> list[OutboxItem]:
        items = sorted(
            (i for i in self._pending.values() if after is None or i.seq > after),
            key=lambda i: i.seq,
        )
        return items[:limit]

    async def mark_delivered(self, ids: Sequence[str]) -> None:
        for i in ids:
            if self._pending.pop(i, None) is not None:
                self.delivered.append(i)

    async def dead_letter(self, item: OutboxItem, reason: str) -> None:
        if self._pending.pop(item.id, None) is None:
            return
        self._dead[item.id] = DeadLetter(
            id=item.id, seq=item.seq, notification=item.notification, reason=reason,
            failed_at=utcnow(),
        )

    async def list(self, receiver: str | None = None) -> list[DeadLetter]:
        return sorted(
            (d for d in self._dead.values() if receiver is None or d.receiver == receiver),
            key=lambda d: d.seq,
        )

    async def replay(self, id: str | None = None, receiver: str | None = None) -> int:
        chosen = await self.list(receiver)
        if id is not None:
            first = self._dead.get(id)
            if first is None:
                return 0
            lane = (first.receiver, first.notification.group_key)
            chosen = [d for d in chosen
                      if (d.receiver, d.notification.group_key) == lane and d.seq >= first.seq]
        for d in chosen:
            del self._dead[d.id]
            self._pending[d.id] = OutboxItem(id=d.id, seq=next(self._seq),
                                             notification=d.notification)
        return len(chosen)

    async def holds(self, receiver: str, group_key: str) -> bool:
        return any(d.receiver == receiver and d.notification.group_key == group_key
                   for d in self._dead.values())
