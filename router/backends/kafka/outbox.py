"""Outbox, dead letters and delivery records on Kafka, for the Dispatcher.

- Outbox: the consumer group `<group>-delivery` reads `<prefix>.notifications`
  (`read_committed`: only what an engine transaction committed) into a bounded buffer that
  `pending()` hands out. `mark_delivered()` / `dead_letter()` mark records done; the group's
  offset per partition advances to the first record not yet done (a background commit), so
  a crash or a rebalance hands undone records to the next owner again. The Dispatcher's
  `already_delivered` check (the records table below, brought up to date on every
  assignment) keeps a redelivered item from being posted twice.
- Handover: when a rebalance revokes partitions, the revocation callback (awaited by aiokafka
  before this member rejoins, so before any new owner is assigned them) stops handing out
  their items and awaits the Dispatcher's `release`: sends in flight finish and their
  delivery records are acknowledged (acks=all) before the partitions go. The new owner syncs
  the records table on assignment, so it skips what was sent here. The wait is bounded
  (`handover_grace`) well inside the group's rebalance timeout (= session timeout, 10 s):
  a member that overstays is dropped from the group and its sends go on unfenced.
- Dead letters: the compacted `<prefix>.notifications-dlq`, key = item id, tailed into memory
  by every replica. A replay writes the notifications back to the outbox topic and the DLQ
  tombstones in one transaction.
- Delivery records: the compacted `<prefix>.delivery-records`, tailed into memory.

Seqs: `OutboxItem.seq` counts up per process in the order items are handed out (the
Dispatcher's cursor). `DeadLetter.seq` is the notification's offset in its outbox partition:
a lane (receiver, group key) lives in one partition, so offsets order it across processes
and restarts, and a replay appends it again in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from router.backends.kafka.table import CompactedTable
from router.backends.kafka.topics import client_kwargs, topic_names
from router.config import KafkaBackendConfig
from router.delivery.outbox import DeadLetter, OutboxItem, Release, Released
from router.model import Notification, utcnow

log = logging.getLogger(__name__)


# How long a revocation waits for sends in flight (a receiver's timeout may be longer: such a
# send goes on, unrecorded when the partition moves, and is logged as cut off).
HANDOVER_GRACE = 5.0


async def _nothing_to_release(ids: Collection[str], grace: float) -> Released:
    return Released(finished=0, cut_off=0)


# Kafka 4.1 answers a read_committed long poll as soon as a transaction's commit marker lands
# (measured: under 1 ms median from the commit's return, whatever this wait); a broker that
# only answers on new data or at the end of the wait holds a committed notification up to it.
_FETCH_WAIT_MS = 20


def decode_dead_letter(value: bytes) -> DeadLetter:
    return DeadLetter.model_validate_json(value)


@dataclass
class _Held:
    item: OutboxItem
    tp: TopicPartition
    offset: int


@dataclass
class _Cursor:
    """Progress of one owned outbox partition."""

    # Records below were already taken (re-fetches after a seek are skipped); -1: none yet,
    # so nothing is committed before the first record (the group's offset stays as it is).
    next_offset: int = -1
    committed: int = -1  # last offset this process committed for the group
    open: deque[int] = field(default_factory=deque)  # taken, not yet done, in offset order
    done: set[int] = field(default_factory=set)  # done out of order

    def finish(self, offset: int) -> None:
        self.done.add(offset)
        while self.open and self.open[0] in self.done:
            self.done.discard(self.open.popleft())

    @property
    def commit_point(self) -> int:
        return self.open[0] if self.open else self.next_offset


class KafkaOutbox:
    """`Outbox` and `DeadLetters` (see `router.delivery.outbox.MemoryOutbox` for semantics)."""

    def __init__(self, cfg: KafkaBackendConfig, dead: CompactedTable[DeadLetter],
                 records: CompactedTable[bytes], *, on_items: Callable[[], None] = lambda: None,
                 max_buffer: int = 20_000, commit_interval: float = 0.5,
                 handover_grace: float = HANDOVER_GRACE) -> None:
        self._cfg = cfg
        self._topic = topic_names(cfg.topic_prefix).notifications
        self._group = f"{cfg.group_id}-delivery"
        self._dead = dead
        self._records = records
        self.on_items = on_items
        # Called when items are done (delivered, parked): intake's back-pressure gate.
        self.on_done: Callable[[], None] = lambda: None
        self._max_buffer = max_buffer
        self._commit_interval = commit_interval
        self._seq = itertools.count(1)
        self._held: dict[str, _Held] = {}  # by item id, in seq order
        # Items of partitions being revoked: no longer handed out, still finished (committed).
        self._leaving: dict[str, _Held] = {}
        # Partitions whose records are taken: assigned, and the tables caught up.
        self._owned: set[TopicPartition] = set()
        self._release: Release = _nothing_to_release
        self._handover_grace = handover_grace
        self._cursors: dict[TopicPartition, _Cursor] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._replayer: AIOKafkaProducer | None = None
        self._replay_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._joined = False
        self._full = False

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._cfg), group_id=self._group,
            client_id="incident-router-delivery", enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
            fetch_max_wait_ms=_FETCH_WAIT_MS,
        )
        await consumer.start()
        self._consumer = consumer
        consumer.subscribe([self._topic], listener=_Listener(self))
        self._tasks = [
            asyncio.create_task(self._fetch(), name="kafka-outbox-fetch"),
            asyncio.create_task(self._commit_loop(), name="kafka-outbox-commit"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await self._commit(consumer)
            await consumer.stop()
        replayer, self._replayer = self._replayer, None
        if replayer is not None:
            await replayer.stop()

    @property
    def joined(self) -> bool:
        return self._joined

    def release_to(self, release: Release) -> None:
        """`HandingOverOutbox`: the Dispatcher's `release`, awaited on revocation."""
        self._release = release

    # --- rebalance -------------------------------------------------------------------------

    async def assigned(self, tps: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        self._joined = True
        # What a previous owner recorded or parked must be visible before its items come back:
        # hold the partitions (paused records stay unread, not skipped) until caught up.
        consumer.pause(*tps)
        for tp in tps:
            self._cursors.setdefault(tp, _Cursor())
        try:
            await self._records.sync()
            await self._dead.sync()
        except Exception as exc:
            log.warning("delivery tables not caught up on assignment: %s", type(exc).__name__)
        self._owned |= tps
        consumer.resume(*tps)

    async def revoked(self, tps: set[TopicPartition]) -> None:
        """Hand the partitions over: nothing more of them is taken or handed out, the
        Dispatcher finishes and records what it is sending, the offsets are committed."""
        if not tps:
            return
        self._owned -= tps
        leaving = {k: h for k, h in self._held.items() if h.tp in tps}
        for key in leaving:
            del self._held[key]
        self._leaving.update(leaving)
        try:
            released = await self._release(list(leaving), self._handover_grace)
        finally:
            consumer = self._consumer
            if consumer is not None:
                try:
                    await self._commit(consumer)
                except Exception as exc:
                    log.warning("outbox commit on revocation failed: %s", type(exc).__name__)
            for tp in tps:
                self._cursors.pop(tp, None)
            for key in leaving:  # undone: the new owner sends them
                self._leaving.pop(key, None)
        log.info("handed over %d outbox partitions: %d sends finished, %d cut off",
                 len(tps), released.finished, released.cut_off)
        if released.cut_off:
            log.warning("%d sends were still in flight %gs after their partitions were revoked: "
                        "not recorded, the new owner may send them again",
                        released.cut_off, self._handover_grace)

    # --- intake from the topic -------------------------------------------------------------

    async def _fetch(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            try:
                full = len(self._held) >= self._max_buffer
                if full != self._full:  # keep polling (group liveness), but fetch nothing
                    assignment = consumer.assignment()
                    if full:
                        consumer.pause(*assignment)
                    else:
                        consumer.resume(*assignment)
                    self._full = full
                data = await consumer.getmany(timeout_ms=1000, max_records=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox fetch failed: %s", type(exc).__name__)
                await asyncio.sleep(1)
                continue
            new = False
            for tp, records in data.items():
                if tp not in self._owned:
                    # Before the assignment callback caught the tables up, or being revoked:
                    # not ours to send yet (or any more); read them again if they stay ours.
                    with contextlib.suppress(Exception):
                        consumer.seek(tp, records[0].offset)
                    continue
                cursor = self._cursors.setdefault(tp, _Cursor())
                for r in records:
                    if r.offset < cursor.next_offset:
                        continue
                    cursor.next_offset = r.offset + 1
                    cursor.open.append(r.offset)
                    try:
                        n = Notification.model_validate_json(r.value or b"")
                    except ValueError:
                        log.error("outbox offset %d: undecodable notification skipped", r.offset)
                        cursor.finish(r.offset)
                        continue
                    if n.id in self._held:  # the same notification twice: deliver it once
                        cursor.finish(r.offset)
                        continue
                    item = OutboxItem(id=n.id, seq=next(self._seq), notification=n)
                    self._held[n.id] = _Held(item, tp, r.offset)
                    new = True
            if new:
                self.on_items()

    # --- Outbox ----------------------------------------------------------------------------

    async def pending(self, limit: int, after: int | None = None) -> list[OutboxItem]:
        items: list[OutboxItem] = []
        for held in self._held.values():  # insertion order is seq order
            if after is None or held.item.seq > after:
                items.append(held.item)
                if len(items) >= limit:
                    break
        return items

    async def mark_delivered(self, ids: Sequence[str]) -> None:
        for i in ids:
            self._finish(i)

    async def dead_letter(self, item: OutboxItem, reason: str) -> None:
        held = self._held.get(item.id) or self._leaving.get(item.id)
        if held is None:
            return  # delivered, parked already, or its partition moved to another replica
        dead = DeadLetter(id=item.id, seq=held.offset, notification=item.notification,
                          reason=reason, failed_at=utcnow())
        await self._dead.put(item.id, dead.model_dump_json().encode())
        self._finish(item.id)

    @property
    def backlog(self) -> int:
        """Notifications read from the outbox topic and not done yet (delivered or parked)."""
        return len(self._held)

    def _finish(self, item_id: str) -> None:
        held = self._held.pop(item_id, None) or self._leaving.pop(item_id, None)
        if held is None:
            return
        cursor = self._cursors.get(held.tp)
        if cursor is not None:
            cursor.finish(held.offset)
        self.on_done()

    async def _commit_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            await asyncio.sleep(self._commit_interval)
            try:
                await self._commit(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a rebalance or outage; the next round tries again
                log.info("outbox offset commit failed: %s", type(exc).__name__)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        owned = consumer.assignment()
        offsets = {tp: c.commit_point for tp, c in self._cursors.items()
                   if tp in owned and c.commit_point > c.committed}
        if not offsets:
            return
        await consumer.commit(offsets)
        for tp, offset in offsets.items():
            cursor = self._cursors.get(tp)
            if cursor is not None:
                cursor.committed = max(cursor.committed, offset)

    # --- DeadLetters -----------------------------------------------------------------------

    async def list(self, receiver: str | None = None) -> list[DeadLetter]:
        return sorted(
            (d for d in self._dead.rows.values() if receiver is None or d.receiver == receiver),
            key=lambda d: (d.failed_at, d.seq),
        )

    async def replay(self, id: str | None = None, receiver: str | None = None) -> int:
        chosen = await self.list(receiver)
        if id is not None:
            first = self._dead.rows.get(id)
            if first is None:
                return 0
            lane = (first.receiver, first.notification.group_key)
            chosen = [d for d in chosen
                      if (d.receiver, d.notification.group_key) == lane and d.seq >= first.seq]
        if not chosen:
            return 0
        # Lane order is seq (outbox offset) order; lanes are independent of each other.
        chosen.sort(key=lambda d: (d.receiver, d.notification.group_key, d.seq))
        async with self._replay_lock:
            producer = await self._replay_producer()
            async with producer.transaction():  # aborted if anything in it raises
                for d in chosen:
                    n = d.notification
                    await producer.send(self._topic, key=n.group_key.encode(),
                                        value=n.model_dump_json().encode())
                tombstones = [await producer.send(self._dead.topic, key=d.id.encode(), value=None)
                              for d in chosen]
                metas = await asyncio.gather(*tombstones)
        for d, meta in zip(chosen, metas, strict=True):
            self._dead.applied(d.id, None, meta.partition, meta.offset)
        self.on_items()
        return len(chosen)

    async def _replay_producer(self) -> AIOKafkaProducer:
        if self._replayer is None:
            # Unique per process: replays of two replicas never fence each other.
            producer = AIOKafkaProducer(
                **client_kwargs(self._cfg),
                transactional_id=f"{self._cfg.group_id}-replay-{uuid.uuid4().hex}",
                client_id="incident-router-replay",
            )
            await producer.start()
            self._replayer = producer
        return self._replayer

    async def holds(self, receiver: str, group_key: str) -> bool:
        if not self._holds(receiver, group_key):
            return False
        # Another replica may have replayed the lane: look again once caught up.
        await self._dead.sync()
        return self._holds(receiver, group_key)

    def _holds(self, receiver: str, group_key: str) -> bool:
        return any(d.receiver == receiver and d.notification.group_key == group_key
                   for d in self._dead.rows.values())


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, outbox: KafkaOutbox) -> None:
        self._outbox = outbox

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._outbox.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._outbox.assigned(assigned)


# --- delivery records ------------------------------------------------------------------------

_SEP = "\x1f"


class KafkaDeliveryStore:
    """`DeliveryStore` on the compacted delivery-records topic (every replica holds it all)."""

    def __init__(self, table: CompactedTable[bytes]) -> None:
        self._table = table

    async def already_delivered(self, notification_id: str, receiver: str) -> bool:
        return _SEP.join(("delivered", receiver, notification_id)) in self._table.rows

    async def record(self, notification_id: str, receiver: str) -> None:
        value = orjson.dumps({"at": utcnow().isoformat()})
        await self._table.put(_SEP.join(("delivered", receiver, notification_id)), value)

    async def get_ref(self, receiver: str, key: str) -> dict[str, str] | None:
        raw = self._table.rows.get(_SEP.join(("ref", receiver, key)))
        if raw is None:
            return None
        ref: dict[str, str] = orjson.loads(raw)
        return ref

    async def put_ref(self, receiver: str, key: str, ref: dict[str, str]) -> None:
        await self._table.put(_SEP.join(("ref", receiver, key)), orjson.dumps(ref))
