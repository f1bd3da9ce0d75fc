"""The engine on the Kafka backend: one consumer group, one `Engine` per owned partition.

Lifecycle of a partition (mirrors aiokafka's `local_state_consumer` example):

1. assigned: create its transactional producer, `transactional_id = <group>-engine-<p>`. Its
   start fences a zombie owner of the same partition and aborts that owner's open
   transaction (aiokafka has no KIP-447 fencing, so the id is derived from the partition).
2. restore: read `<prefix>.state` partition p (co-partitioned with alerts) from the beginning
   up to the end offset captured at restore start, `read_committed`; tombstones delete.
   Every partitions assigned together is restored in one pass.
3. seek the alerts partition to the next undecided offset: the one the changelog holds under
   `POSITION_KEY` (or the group's committed offset, if higher or the only one); only then
   process it.
4. each batch: `engine.apply` (and due timers), then ONE transaction: state changes (and the
   partition's incident id counter, `ids.IDS_KEY`), notifications, the changed groups'
   alerts view, the changed incidents' view (`incidents-view`, keyed by incident id), and the
   next alerts offset (`POSITION_KEY` in the state partition: it commits with the state it
   belongs to, without the two offset requests a consumer-group offset in a transaction
   costs). Any failure aborts it; the engine is rebuilt from the changelog and the partition
   re-read from the position there, so a decision is neither lost nor repeated. After the
   commit the position is also committed as the group's offset (in the background, for lag
   monitoring and `drained()`; a lower bound of the changelog's).
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
from router.backends.tasks import cancelled
from router.config import KafkaBackendConfig
from router.engine.engine import Batch, Engine
from router.engine.ids import IncidentIds
from router.engine.state import EngineContext, GroupState
from router.metrics import EngineMetrics
from router.model import Alert, CommandEvent, utcnow
from router.noise.silences import Silence

log = logging.getLogger(__name__)

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
_ALERTS: TypeAdapter[list[Alert]] = TypeAdapter(list[Alert])
# The next alerts offset to decide, in the state partition beside the groups (a group key
# never starts with NUL, see `ids.IDS_KEY`).
POSITION_KEY = "\x00alerts-position"
_BEHIND_FACTOR = 10  # at most batch_size * this per round while behind
_RESTORE_RECORDS = 50_000  # per getmany while restoring
_RESTORE_FETCH_BYTES = 16 * 1024 * 1024  # per partition and fetch while restoring


def encode_view(state: GroupState) -> bytes:
    """The alerts-view value of a group: its alerts' latest versions."""
    return _ALERTS.dump_json([s.alert for s in state.alerts.values()])


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
        # Called after every round (the lag may have dropped): intake's back-pressure gate.
        self.on_progress: Callable[[], None] = lambda: None
        # Partition count per topic (KafkaBackend.start): co-partitioned topics get records
        # on the partition being decided, without hashing their keys again.
        self.partition_counts: dict[str, int] = {}
        self.last_lag = 0  # `lag()` after the last round (cheap to read per request)
        # (incident id, view JSON, partition, offset) of each committed incident-view record.
        self.on_incident: Callable[[str, bytes, int, int], None] = lambda *_: None
        # Commands the engine addressed to other engines (`Batch.commands`), handed over after
        # the commit: the backend appends them to the log (KafkaBackend points it there).
        self.on_commands: Callable[[list[CommandEvent]], Awaitable[None]] | None = None
        # Test seam: awaited inside each transaction just before its commit.
        self.before_commit: Callable[[TopicPartition], Awaitable[None]] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._restorer: AIOKafkaConsumer | None = None
        self._parts: dict[TopicPartition, Partition] = {}
        self._assigned: set[TopicPartition] = set()
        self._joined = False
        self._lock = asyncio.Lock()  # one batch at a time; a rebalance waits for it
        self._task: asyncio.Task[None] | None = None
        self._openers: set[asyncio.Task[bool]] = set()
        self._positions: dict[TopicPartition, int] = {}  # decided, not yet a group offset
        self._offsets_due = asyncio.Event()
        self._offsets_task: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        restorer = AIOKafkaConsumer(
            **client_kwargs(self._cfg), group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
            client_id="incident-router-restore",
            # Reading a compacted topic to a known end: big fetches, no long polls.
            fetch_max_wait_ms=50, max_partition_fetch_bytes=_RESTORE_FETCH_BYTES,
            fetch_max_bytes=4 * _RESTORE_FETCH_BYTES,
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
        self._offsets_task = asyncio.create_task(self._commit_offsets(),
                                                 name="kafka-engine-offsets")

    async def stop(self) -> None:
        for opener in list(self._openers):
            await cancelled(opener)
        async with self._lock:  # let the batch in progress commit
            await cancelled(self._task)
            self._task = None
        if self._offsets_task is not None:
            await cancelled(self._offsets_task)
            self._offsets_task = None
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    await self._commit_positions(self._consumer)
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

    def silences(self) -> list[Silence]:
        """The silences of the owned partitions' engines, the newest version of each."""
        found: dict[str, Silence] = {}
        for part in self._parts.values():
            for s in part.engine.silences:
                if s.id not in found or s.updated_at > found[s.id].updated_at:
                    found[s.id] = s
        return list(found.values())

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
        """The group gave us `tps`: hold them (paused) and restore them in the background.

        aiokafka starts the heartbeat only after this callback returns, so the restore (which
        may take seconds: a producer per partition, the changelog) must not run in it, or the
        group drops this member after `session_timeout_ms` and rebalances again.
        """
        consumer = self._consumer
        assert consumer is not None
        tps = set(tps)
        consumer.pause(*tps)  # nothing is decided before its state is back
        async with self._lock:
            self._assigned = tps
            self._joined = True
        task = asyncio.create_task(self._open_missing(), name="kafka-engine-restore")
        self._openers.add(task)
        task.add_done_callback(self._openers.discard)

    async def revoked(self, tps: Iterable[TopicPartition]) -> None:
        async with self._lock:  # waits for the batch or the restore in progress
            gone = set(tps)
            self._assigned -= gone
            await self._close([tp for tp in self._parts if tp in gone])
            self._metrics.owned_partitions.set(len(self._parts))
            self._metrics.groups.set(sum(len(p.engine) for p in self._parts.values()))

    async def _open_missing(self) -> bool:
        """Open every assigned partition not open yet; False if one of them failed."""
        async with self._lock:
            missing = sorted(tp for tp in self._assigned if tp not in self._parts)
            ok = True
            if missing:
                try:
                    ok = await self._open(*missing)
                except Exception as exc:  # the run loop retries
                    log.warning("restoring partitions %s failed: %s",
                                [tp.partition for tp in missing], type(exc).__name__)
                    ok = False
            self._metrics.owned_partitions.set(len(self._parts))
            self._metrics.groups.set(sum(len(p.engine) for p in self._parts.values()))
            return ok

    async def _open(self, *tps: TopicPartition) -> bool:
        """(Re)build partitions: fence, restore, seek to the committed offset, resume.

        The partitions' producers start together and their changelogs are read in one pass.
        Returns False if some producer could not start (those stay closed; retried later).
        """
        consumer = self._consumer
        assert consumer is not None
        for tp in tps:
            old = self._parts.pop(tp, None)
            if old is not None:
                await _stop_quietly(old.producer)
        producers = {tp: AIOKafkaProducer(
            **client_kwargs(self._cfg),
            transactional_id=f"{self._cfg.group_id}-engine-{tp.partition}",
            client_id=f"incident-router-engine-{tp.partition}",
        ) for tp in tps}
        try:
            # InitProducerId: fences and aborts a previous owner's open transaction.
            results = await asyncio.gather(*(p.start() for p in producers.values()),
                                           return_exceptions=True)
            for tp, result in zip(list(producers), results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("partition %d: producer did not start: %s", tp.partition,
                                type(result).__name__)
                    await _stop_quietly(producers.pop(tp))
            if not producers:
                return False
            started = time.perf_counter()
            restored = await self._restore([tp.partition for tp in producers])
            self._metrics.restore_seconds.set(time.perf_counter() - started)
            committed = dict(zip(producers, await asyncio.gather(
                *(consumer.committed(tp) for tp in producers)), strict=True))
        except BaseException:
            for producer in producers.values():
                await _stop_quietly(producer)
            raise
        for tp, producer in producers.items():
            engine, position = restored[tp.partition]
            group_offset = committed[tp]
            offset = max((o for o in (position, group_offset) if o is not None), default=None)
            self._positions.pop(tp, None)
            if offset is not None:
                consumer.seek(tp, offset)
            else:
                await consumer.seek_to_beginning(tp)
            self._parts[tp] = Partition(tp, engine, producer, offset or 0)
            consumer.resume(tp)
            log.info("partition %d restored: %d groups, from offset %s", tp.partition,
                     len(engine), offset)
        return len(producers) == len(tps)

    async def _restore(self, partitions: list[int]) -> dict[int, tuple[Engine, int | None]]:
        """The engine and the position (`POSITION_KEY`, None if there is none yet) of each
        of `partitions`, from their changelog partitions, read together."""
        restorer = self._restorer
        assert restorer is not None
        # Incident ids: N = seq * P + p + 1 (see IncidentIds), P the log's partition count.
        consumer = self._consumer
        count = len(consumer.partitions_for_topic(self._topics.alerts) or ()) if consumer else 0
        engines = {p: Engine(self._context,
                             ids=IncidentIds(stride=count or self._cfg.partitions, offset=p))
                   for p in partitions}
        positions: dict[int, int | None] = dict.fromkeys(partitions)
        tps = [TopicPartition(self._topics.state, p) for p in partitions]
        restorer.assign(tps)
        try:
            await restorer.seek_to_beginning(*tps)
            end = await restorer.end_offsets(tps)
            behind = {tp for tp in tps if end[tp] > 0}
            while behind:
                data = await restorer.getmany(*behind, timeout_ms=200,
                                              max_records=_RESTORE_RECORDS)
                for tp, records in data.items():
                    load = engines[tp.partition].load
                    for r in records:
                        if r.key is None:
                            continue
                        key = r.key.decode()
                        if key == POSITION_KEY:
                            positions[tp.partition] = _position(r.value)
                        else:
                            load(key, r.value)
                for tp in list(behind):
                    if await restorer.position(tp) >= end[tp]:
                        behind.discard(tp)
        finally:
            restorer.pause(*tps)  # no fetching (long polls) between restores
        return {p: (engines[p], positions[p]) for p in partitions}

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
                                              max_records=self._max_records())
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

    def _max_records(self) -> int:
        """Records for the next round: `batch_size`, up to `_BEHIND_FACTOR` times more while
        the engine is behind. Each round costs a transaction per partition whatever its size,
        so taking more per round when intake outpaces the engine is what lets it catch up."""
        lag = self.lag()
        if lag <= self._batch_size:
            return self._batch_size
        return min(lag, self._batch_size * _BEHIND_FACTOR)

    def lag(self) -> int:
        """Records on the owned alerts partitions not decided yet (as of the last fetch)."""
        consumer = self._consumer
        if consumer is None:
            return 0
        lag = 0
        for tp, part in self._parts.items():
            end = consumer.last_stable_offset(tp)
            if end is not None and end > part.position:
                lag += end - part.position
        return lag

    def _poll_timeout_ms(self) -> int:
        """Sleep until the earliest timer (at most 1 s); new records wake getmany earlier."""
        deadlines = [d for p in self._parts.values() if (d := p.engine.next_deadline())]
        if not deadlines:
            return 1000
        seconds = (min(deadlines) - self.clock()).total_seconds()
        return int(min(1.0, max(0.0, seconds)) * 1000)

    async def _reopen_failed(self) -> None:
        """Partitions whose restore failed (e.g. the broker was away): try again."""
        if all(tp in self._parts for tp in self._assigned) or self._openers:
            return
        if not await self._open_missing():
            await asyncio.sleep(1)

    def _update_gauges(self) -> None:
        self.last_lag = self.lag()
        self._metrics.lag.set(self.last_lag)
        self._metrics.groups.set(sum(len(p.engine) for p in self._parts.values()))
        self.on_progress()

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
                await self._open(part.tp)  # False: the run loop tries again
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

    def _co_partition(self, topic: str, partition: int) -> int | None:
        """`partition` if `topic` has as many partitions as the alerts topic, else None (the
        producer hashes the key)."""
        counts = self.partition_counts
        alerts = counts.get(self._topics.alerts)
        return partition if alerts is not None and counts.get(topic) == alerts else None

    async def _commit(self, part: Partition, batch: Batch, views: dict[str, bytes | None],
                      records: list[Record]) -> None:
        producer = part.producer
        topics = self._topics
        p = part.tp.partition
        # Keyed by group key like the alerts topic: the same partition when the counts agree.
        n_part = self._co_partition(topics.notifications, p)
        v_part = self._co_partition(topics.alerts_view, p)
        await producer.begin_transaction()
        sent = []
        send = producer.send
        for key, value in batch.encoded.items():
            sent.append(await send(topics.state, value=value, key=key.encode(), partition=p))
        for n in batch.notifications:
            sent.append(await send(topics.notifications, key=n.group_key.encode(),
                                   value=n.model_dump_json().encode(), partition=n_part))
        for key, view in views.items():
            sent.append(await send(topics.alerts_view, value=view, key=key.encode(),
                                   partition=v_part))
        first_incident = len(sent)
        incidents = [(i, v.model_dump_json().encode()) for i, v in batch.incidents.items()]
        for incident_id, value in incidents:
            sent.append(await send(topics.incidents_view, key=incident_id.encode(),
                                   value=value))
        if records:
            sent.append(await send(topics.state, key=_POSITION_KEY_BYTES, partition=p,
                                   value=b"%d" % (records[-1].offset + 1)))
        results = await asyncio.gather(*sent, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if self.before_commit is not None:
            await self.before_commit(part.tp)
        await producer.commit_transaction()
        metas = results[first_incident:first_incident + len(incidents)]
        for (incident_id, value), meta in zip(incidents, metas, strict=True):
            # This replica reads its own incident writes at once (the tail follows).
            self.on_incident(incident_id, value, meta.partition, meta.offset)  # type: ignore[union-attr]
        if batch.notifications:
            self.on_outbox()
        if batch.commands and self.on_commands is not None:
            await self.on_commands(batch.commands)
        if records:
            self._positions[part.tp] = records[-1].offset + 1
            self._offsets_due.set()

    # --- group offsets ---------------------------------------------------------------------

    async def _commit_offsets(self) -> None:
        """Commit decided positions as the group's offsets, one request for all partitions;
        a commit in progress collects what the next one sends."""
        consumer = self._consumer
        assert consumer is not None
        while True:
            await self._offsets_due.wait()
            self._offsets_due.clear()
            try:
                await self._commit_positions(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a rebalance or an outage: the changelog has them
                log.info("engine offset commit failed: %s", type(exc).__name__)
                await asyncio.sleep(0.5)

    async def _commit_positions(self, consumer: AIOKafkaConsumer) -> None:
        owned = consumer.assignment()
        offsets = {tp: o for tp, o in self._positions.items() if tp in owned}
        self._positions.clear()
        if offsets:
            await consumer.commit(offsets)


def _position(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        log.error("ignoring an unreadable alerts position %r", value[:32])
        return None


_POSITION_KEY_BYTES = POSITION_KEY.encode()


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
