"""The engine on the Kafka backend: one consumer group, one `Engine` per owned partition.

Lifecycle of a partition (mirrors aiokafka's `local_state_consumer` example):

1. assigned: create its transactional producer, `transactional_id = <group>-engine-<p>`. Its
   start fences a zombie owner of the same partition and aborts that owner's open
   transaction (aiokafka has no KIP-447 fencing, so the id is derived from the partition).
2. restore: read `<prefix>.state` partition p (co-partitioned with alerts) from the beginning
   up to the end offset captured at restore start, `read_committed`; tombstones delete.
3. seek the alerts partition to the group's committed offset; only then process it.
4. each batch: `engine.apply` (and due timers), then ONE transaction: state changes (and the
   partition's incident id counter, `state.IDS_KEY`), notifications, the changed groups'
   alerts view, the changed incidents' view (`incidents-view`, keyed by incident id), and the
   consumed offsets. Any failure
   aborts it; the engine is rebuilt from the changelog and the partition re-read from the
   committed offset, so a decision is neither lost nor repeated.
5. revoked: wait for the batch in progress, drop the engine, close the producer.

`ready()` is false until every assigned partition is restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ProducerFenced
from aiokafka.structs import ConsumerRecord
from pydantic import TypeAdapter

from router.backends.kafka_topics import Topics, client_kwargs, decode_event, topic_names
from router.config import KafkaBackendConfig
from router.engine.engine import Batch, Engine
from router.engine.state import EngineContext, GroupState, IncidentIds
from router.metrics import EngineMetrics
from router.model import Alert, utcnow

log = logging.getLogger(__name__)

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
_ALERTS: TypeAdapter[list[Alert]] = TypeAdapter(list[Alert])


def encode_view(state: GroupState) -> bytes:
    """The alerts-view value of a group: its alerts' latest versions."""
    return _ALERTS.dump_json([s.a for s in state.alerts.values()])


def decode_view(value: bytes) -> list[Alert]:
    return _ALERTS.validate_json(value)


@dataclass
class Partition:
    """What this process holds for one owned partition of the alerts topic."""

    tp: TopicPartition
    engine: Engine
    producer: AIOKafkaProducer
    position: int  # next alerts offset to decide; records below it were already decided
    views: dict[str, int] = field(default_factory=dict)  # group -> hash of last view written
    fenced: bool = False  # another owner took the producer: wait for the revocation


class KafkaEngineRunner:
    """`EngineHandle` of the Kafka backend."""

    def __init__(self, cfg: KafkaBackendConfig, context: EngineContext, metrics: EngineMetrics,
                 *, clock: Callable[[], datetime] = utcnow, batch_size: int = 1000) -> None:
        self._cfg = cfg
        self._topics: Topics = topic_names(cfg.topic_prefix)
        self._context = context
        self._metrics = metrics
        self.clock = clock
        self._batch_size = batch_size
        self.on_outbox: Callable[[], None] = lambda: None
        # (incident id, view JSON, partition, offset) of each committed incident-view record.
        self.on_incident: Callable[[str, bytes, int, int], None] = lambda *_: None
        # Test seam: awaited inside each transaction just before its commit.
        self.before_commit: Callable[[TopicPartition], Awaitable[None]] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._restorer: AIOKafkaConsumer | None = None
        self._parts: dict[TopicPartition, Partition] = {}
        self._assigned: set[TopicPartition] = set()
        self._joined = False
        self._lock = asyncio.Lock()  # one batch at a time; a rebalance waits for it
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        restorer = AIOKafkaConsumer(
            **client_kwargs(self._cfg), group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
        )
        await restorer.start()
        self._restorer = restorer
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._cfg), group_id=self._cfg.group_id,
            client_id="incident-router-engine", enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
        )
        await consumer.start()
        self._consumer = consumer
        consumer.subscribe([self._topics.alerts], listener=_Listener(self))
        self._task = asyncio.create_task(self._run(), name="kafka-engine")

    async def stop(self) -> None:
        async with self._lock:  # let the batch in progress commit
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None
        if self._consumer is not None:
            await self._consumer.stop()  # leaves the group: the others take over at once
            self._consumer = None
        await self._close(list(self._parts))
        self._assigned.clear()
        if self._restorer is not None:
            await self._restorer.stop()
            self._restorer = None

    def ready(self) -> bool:
        """Joined the group and every assigned partition restored."""
        return self._joined and all(tp in self._parts for tp in self._assigned)

    def set_context(self, context: EngineContext) -> None:
        self._context = context
        for part in self._parts.values():
            part.engine.context = context

    @property
    def owned(self) -> list[int]:
        return sorted(tp.partition for tp in self._parts)

    async def drained(self) -> None:
        """Until the group has decided everything on the alerts topic at the time of the call
        (every owner's committed offset reached the end offsets captured now)."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("kafka engine is not started")
        partitions = consumer.partitions_for_topic(self._topics.alerts)
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(self._topics.alerts) or set()
        tps = [TopicPartition(self._topics.alerts, p) for p in sorted(partitions)]
        end = await consumer.end_offsets(tps)
        for tp in tps:
            while True:
                if end[tp] == 0 or ((await consumer.committed(tp)) or 0) >= end[tp]:
                    break
                await asyncio.sleep(0.05)

    # --- ownership -------------------------------------------------------------------------

    async def assigned(self, tps: Iterable[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        async with self._lock:
            self._assigned = set(tps)
            self._joined = True
            consumer.pause(*self._assigned)  # nothing is decided before its state is back
            for tp in sorted(self._assigned):
                try:
                    await self._open(tp)
                except Exception as exc:  # the run loop retries it
                    log.warning("restoring partition %d failed: %s", tp.partition,
                                type(exc).__name__)
            self._metrics.owned_partitions.set(len(self._parts))
            self._metrics.groups.set(sum(len(p.engine) for p in self._parts.values()))

    async def revoked(self, tps: Iterable[TopicPartition]) -> None:
        async with self._lock:
            gone = set(tps)
            self._assigned -= gone
            await self._close([tp for tp in self._parts if tp in gone])
            self._metrics.owned_partitions.set(len(self._parts))
            self._metrics.groups.set(sum(len(p.engine) for p in self._parts.values()))

    async def _open(self, tp: TopicPartition) -> None:
        """(Re)build a partition: fence, restore, seek to the committed offset, resume."""
        consumer = self._consumer
        assert consumer is not None
        old = self._parts.pop(tp, None)
        if old is not None:
            await _stop_quietly(old.producer)
        producer = AIOKafkaProducer(
            **client_kwargs(self._cfg),
            transactional_id=f"{self._cfg.group_id}-engine-{tp.partition}",
            client_id=f"incident-router-engine-{tp.partition}",
        )
        try:
            await producer.start()  # InitProducerId: fences and aborts a previous owner
            started = time.perf_counter()
            engine = await self._restore(tp.partition)
            self._metrics.restore_seconds.set(time.perf_counter() - started)
            committed = await consumer.committed(tp)
        except BaseException:
            await _stop_quietly(producer)
            raise
        if committed is not None:
            consumer.seek(tp, committed)
        else:
            await consumer.seek_to_beginning(tp)
        self._parts[tp] = Partition(tp, engine, producer, committed or 0)
        consumer.resume(tp)
        log.info("partition %d restored: %d groups, from offset %s", tp.partition, len(engine),
                 committed)

    async def _restore(self, partition: int) -> Engine:
        restorer = self._restorer
        assert restorer is not None
        # Incident ids: N = seq * P + p + 1 (see IncidentIds), P the log's partition count.
        consumer = self._consumer
        count = len(consumer.partitions_for_topic(self._topics.alerts) or ()) if consumer else 0
        ids = IncidentIds(stride=count or self._cfg.partitions, offset=partition)
        engine = Engine(self._context, ids=ids)
        tp = TopicPartition(self._topics.state, partition)
        restorer.assign([tp])
        await restorer.seek_to_beginning(tp)
        end = (await restorer.end_offsets([tp]))[tp]
        while await restorer.position(tp) < end:
            data = await restorer.getmany(tp, timeout_ms=500, max_records=5000)
            for r in data.get(tp, ()):
                if r.key is not None:
                    engine.load(r.key.decode(), r.value)
        return engine

    async def _close(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            part = self._parts.pop(tp, None)
            if part is not None:
                await _stop_quietly(part.producer)

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            try:
                await self._reopen_failed()
                data = await consumer.getmany(timeout_ms=self._poll_timeout_ms(),
                                              max_records=self._batch_size)
                async with self._lock:
                    now = self.clock()
                    work = []
                    for tp, part in self._parts.items():
                        records = [r for r in data.get(tp, ()) if r.offset >= part.position]
                        deadline = part.engine.next_deadline()
                        if part.fenced or (not records and (deadline is None or deadline > now)):
                            continue
                        work.append(self._decide_safely(part, records, now))
                    await asyncio.gather(*work)
                    self._update_gauges()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the broker is away; aiokafka reconnects
                log.warning("engine loop: %s", type(exc).__name__)
                await asyncio.sleep(1)

    def _poll_timeout_ms(self) -> int:
        """Sleep until the earliest timer (at most 1 s); new records wake getmany earlier."""
        deadlines = [d for p in self._parts.values() if (d := p.engine.next_deadline())]
        if not deadlines:
            return 1000
        seconds = (min(deadlines) - self.clock()).total_seconds()
        return int(min(1.0, max(0.0, seconds)) * 1000)

    async def _reopen_failed(self) -> None:
        """Partitions whose restore failed (e.g. the broker was away): try again."""
        missing = [tp for tp in self._assigned if tp not in self._parts]
        if not missing:
            return
        async with self._lock:
            for tp in sorted(missing):
                if tp in self._assigned and tp not in self._parts:
                    try:
                        await self._open(tp)
                    except Exception as exc:
                        log.warning("restoring partition %d failed again: %s", tp.partition,
                                    type(exc).__name__)
                        await asyncio.sleep(1)
            self._metrics.owned_partitions.set(len(self._parts))

    def _update_gauges(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        lag = 0
        for tp, part in self._parts.items():
            end = consumer.last_stable_offset(tp)
            if end is not None:
                lag += max(0, end - part.position)
        self._metrics.lag.set(lag)
        self._metrics.groups.set(sum(len(p.engine) for p in self._parts.values()))

    async def _decide_safely(self, part: Partition, records: list[Record], now: datetime) -> None:
        try:
            await self._decide(part, records, now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._metrics.aborts.inc()
            with contextlib.suppress(Exception):
                await part.producer.abort_transaction()
            if isinstance(exc, ProducerFenced):
                # A newer owner exists: stop here, the rebalance hands the partition over.
                log.warning("partition %d: fenced by a newer owner", part.tp.partition)
                part.fenced = True
                return
            log.warning("partition %d: transaction aborted (%s); restoring from the changelog",
                        part.tp.partition, type(exc).__name__)
            try:
                await self._open(part.tp)
            except Exception as again:
                log.warning("partition %d: restore failed (%s), retrying",
                            part.tp.partition, type(again).__name__)

    async def _decide(self, part: Partition, records: list[Record], now: datetime) -> None:
        events = []
        for r in records:
            try:
                events.append(decode_event(r.value or b""))
            except ValueError:
                log.error("partition %d offset %d: undecodable event skipped",
                          part.tp.partition, r.offset)
        batch = part.engine.apply(events, now)
        if batch.empty and not records:
            return
        views = self._views(part, batch)
        await self._commit(part, batch, views, records)
        if records:
            part.position = records[-1].offset + 1
        for key, value in views.items():
            if value is None:
                part.views.pop(key, None)
            else:
                part.views[key] = hash(value)
        self._metrics.events.inc(len(events))
        self._metrics.count(batch)

    @staticmethod
    def _views(part: Partition, batch: Batch) -> dict[str, bytes | None]:
        """Alerts-view records for groups whose alerts changed (not e.g. a duplicate count)."""
        views: dict[str, bytes | None] = {}
        for key, state in batch.changed.items():
            if state is None:
                views[key] = None
                continue
            value = encode_view(state)
            if part.views.get(key) != hash(value):
                views[key] = value
        return views

    async def _commit(self, part: Partition, batch: Batch, views: dict[str, bytes | None],
                      records: list[Record]) -> None:
        producer = part.producer
        topics = self._topics
        await producer.begin_transaction()
        sent = []
        for key, value in batch.encoded.items():
            sent.append(await producer.send(topics.state, value=value, key=key.encode(),
                                            partition=part.tp.partition))
        for n in batch.notifications:
            sent.append(await producer.send(topics.notifications, key=n.group_key.encode(),
                                            value=n.model_dump_json().encode()))
        for key, view in views.items():
            sent.append(await producer.send(topics.alerts_view, value=view, key=key.encode()))
        first_incident = len(sent)
        incidents = [(i, v.model_dump_json().encode()) for i, v in batch.incidents.items()]
        for incident_id, value in incidents:
            sent.append(await producer.send(topics.incidents_view, key=incident_id.encode(),
                                            value=value))
        results = await asyncio.gather(*sent, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if records:
            await producer.send_offsets_to_transaction(
                {part.tp: records[-1].offset + 1}, self._cfg.group_id
            )
        if self.before_commit is not None:
            await self.before_commit(part.tp)
        await producer.commit_transaction()
        for (incident_id, value), meta in zip(incidents, results[first_incident:], strict=True):
            # This replica reads its own incident writes at once (the tail follows).
            self.on_incident(incident_id, value, meta.partition, meta.offset)  # type: ignore[union-attr]
        if batch.notifications:
            self.on_outbox()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: KafkaEngineRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._runner.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._runner.assigned(assigned)


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception as exc:
        log.debug("closing a transactional producer: %s", type(exc).__name__)
