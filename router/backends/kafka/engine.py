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
4. each batch goes through the engine's step (`router.engine.runner`, the same on both
   backends; `_PartitionStore` is this partition's `EngineStore`): `engine.apply` (and due
   timers), then ONE transaction (aiokafka's `producer.transaction()`): state changes (and the
   partition's incident id counter, `ids.IDS_KEY`), notifications, the changed groups'
   alerts view, the changed incidents' view (`incidents-view`, keyed by incident id), and the
   next alerts offset (`POSITION_KEY` in the state partition: it commits with the state it
   belongs to, without the two offset requests a consumer-group offset in a transaction
   costs). Any failure aborts it; the engine is rebuilt from the changelog and the partition
   re-read from the position there, so a decision is neither lost nor repeated. After the
   commit the position is also committed as the group's offset (in the background, for lag
   monitoring and `drained()`; a lower bound of the changelog's). Partitions commit on their
   own: a partition's next batch starts as soon as its own transaction returns, with what was
   fetched for it meanwhile, not when the slowest partition of a round is done; and, with
   `engine_transactions_per_second`, when the replica's transaction budget (pacing.py) has
   one for it, the partition whose records are oldest first.
5. revoked: wait for the partition's batch in progress, drop the engine, close the producer.

`ready()` is false until every assigned partition is restored, and while the engine is stalled.

No stall without an alarm: every broker call of the engine is bounded by
`engine_call_timeout_seconds` (a transaction that times out is aborted and its partition
rebuilt, as after any failure). What no call timeout catches (a consumer that stopped fetching,
a producer wedged after a broker crash) the watchdog does: it measures the lag against the
broker's end offsets, and when work waits and the engine made no progress for
`engine_stall_seconds` (`watchdog.stalled`) it marks the engine stalled (readiness fails,
`incident_router_engine_stalled` is 1) and restarts the consumer and the producers. A lag the
broker does not report (a failed or timed-out call, partitions not restored, no group yet) is
unknown, not 0: the clock keeps running. Progress is a committed decision or a restore read;
idle is a lag the broker confirmed as 0 with no timer overdue. The restarted member rejoins the
group and restores from the changelog; the new producers' start fences the wedged ones, so
their open transactions never commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ProducerFenced
from aiokafka.structs import ConsumerRecord
from pydantic import TypeAdapter

from router.backends.kafka.fresh import FreshEvents
from router.backends.kafka.pacing import budget_for
from router.backends.kafka.topics import Topics, client_kwargs, decode_event, topic_names
from router.backends.watchdog import stall_limit, stalled, waiting
from router.config import KafkaBackendConfig
from router.engine.engine import Batch, Engine
from router.engine.ids import IncidentIds
from router.engine.runner import Outcome, step_safely
from router.engine.state import EngineContext, GroupState
from router.metrics import EngineMetrics
from router.model import Alert, CommandEvent, utcnow
from router.noise.silences import Silence

log = logging.getLogger(__name__)

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
T = TypeVar("T")
_ALERTS: TypeAdapter[list[Alert]] = TypeAdapter(list[Alert])
# The next alerts offset to decide, in the state partition beside the groups (a group key
# never starts with NUL, see `ids.IDS_KEY`).
POSITION_KEY = "\x00alerts-position"
_BEHIND_FACTOR = 10  # at most batch_size * this per round while behind
_RESTORE_RECORDS = 50_000  # per getmany while restoring
# The group offsets are for lag monitoring and `drained()` (the changelog's position is what
# a new owner resumes from): one commit request per round was about 6% of the engine's
# requests at 300 alerts/s (bench/README.md, Kafka).
_OFFSETS_EVERY = 0.1
_RESTORE_FETCH_BYTES = 16 * 1024 * 1024  # per partition and fetch while restoring


def _whole_resolved(context: EngineContext) -> EngineContext:
    """The alerts view is written from the groups' states (`encode_view`): to list resolved
    alerts as the embedded backend's alert table does, the states keep them whole for
    `resolved_retention` instead of compacting them (`EngineContext.compact_resolved`)."""
    return context.with_(compact_resolved=False) if context.compact_resolved else context


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
    started: float = float("-inf")  # monotonic start of its last batch (the batch interval)


class KafkaEngineRunner:
    """`EngineHandle` of the Kafka backend."""

    def __init__(self, cfg: KafkaBackendConfig, context: EngineContext, metrics: EngineMetrics,
                 *, clock: Callable[[], datetime] = utcnow, batch_size: int = 1000) -> None:
        self._cfg = cfg
        self._topics: Topics = topic_names(cfg.topic_prefix)
        self._context = _whole_resolved(context)
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
        # Events this process appended (KafkaBackend shares intake's): taken instead of decoded.
        self.fresh = FreshEvents(0)
        # Test seam: awaited inside each transaction just before its commit.
        self.before_commit: Callable[[TopicPartition], Awaitable[None]] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._restorer: AIOKafkaConsumer | None = None
        self._parts: dict[TopicPartition, Partition] = {}
        self._assigned: set[TopicPartition] = set()
        self._joined = False
        # Held to start batches, to restore, and by a rebalance (which also waits for the
        # batches of the partitions it takes away).
        self._lock = asyncio.Lock()
        self._busy: dict[TopicPartition, asyncio.Task[None]] = {}  # a batch in progress
        # Fetched while the partition's batch was in progress: the next batch.
        self._pending: dict[TopicPartition, list[Record]] = {}
        # Bumped at every seek of a partition: records fetched before it are not its any more.
        self._seeks: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._openers: set[asyncio.Task[bool]] = set()
        self._positions: dict[TopicPartition, int] = {}  # decided, not yet a group offset
        self._offsets_due = asyncio.Event()
        self._offsets_task: asyncio.Task[None] | None = None
        self._call_timeout = cfg.engine_call_timeout_seconds
        self._interval = cfg.engine_batch_interval_seconds
        # Transactions per second of all partitions together (pacing.py); a partition whose
        # turn has not come keeps fetching into its next batch.
        self._budget = budget_for(cfg.engine_transactions_per_second)
        self._budget_waits = False  # the last `_start_batches` left work for the budget
        self._stall_seconds = cfg.engine_stall_seconds
        self.monotonic: Callable[[], float] = time.monotonic  # the watchdog's clock
        self._last_progress = 0.0  # monotonic: the engine moved or was seen with nothing to do
        self.stalled = False
        # A transaction aborted since the last committed decision: rebuilding the partition
        # again and again is not progress, however much of the changelog it reads.
        self._failing = False
        self._restarts_in_a_row = 0  # watchdog restarts since the last decision (back-off)
        self._watchdog: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._start_clients()
        self._watchdog = asyncio.create_task(self._watch(), name="kafka-engine-watchdog")

    async def stop(self) -> None:
        await self._end(self._watchdog, "the engine watchdog")
        self._watchdog = None
        for opener in list(self._openers):
            await self._end(opener, "a partition restore")
        # Let the batches in progress commit, unless they hang (each of their calls is
        # bounded); none starts while the lock is held.
        lock, held = self._lock, False
        try:
            async with asyncio.timeout(self._call_timeout):
                await lock.acquire()
                held = True
                if self._busy:
                    await asyncio.wait(list(self._busy.values()))
        except TimeoutError:
            log.warning("engine batch did not finish within %gs; cancelling it",
                        self._call_timeout)
        try:
            await self._end(self._task, "the engine loop")
            self._task = None
        finally:
            if held:
                lock.release()
        if self._offsets_task is not None:
            await self._end(self._offsets_task, "the offset committer")
            self._offsets_task = None
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._call_timeout):
                        await self._commit_positions(self._consumer)
        await self._stop_clients()

    async def _start_clients(self) -> None:
        """The restorer and the group consumer, subscribed, with the loop's tasks."""
        self._last_progress = self.monotonic()
        self._failing = False
        restorer = AIOKafkaConsumer(
            **client_kwargs(self._cfg), group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
            client_id="incident-router-restore",
            # Reading a compacted topic to a known end: big fetches, no long polls.
            fetch_max_wait_ms=50, max_partition_fetch_bytes=_RESTORE_FETCH_BYTES,
            fetch_max_bytes=4 * _RESTORE_FETCH_BYTES,
        )
        self._restorer = restorer
        await self._bounded(restorer.start())
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._cfg), group_id=self._cfg.group_id,
            client_id="incident-router-engine", enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
        )
        self._consumer = consumer
        await self._bounded(consumer.start())
        consumer.subscribe([self._topics.alerts], listener=_Listener(self, consumer))
        self._task = asyncio.create_task(self._run(), name="kafka-engine")
        self._offsets_task = asyncio.create_task(self._commit_offsets(),
                                                 name="kafka-engine-offsets")

    async def _stop_clients(self) -> None:
        """Close the consumer (it leaves the group: the others take over at once), the
        producers and the restorer; each bounded, since a wedged client is why we may be here."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await self._bounded_stop(consumer.stop(), "engine consumer")
        await self._close(list(self._parts))
        self._assigned.clear()
        self._joined = False
        self._positions.clear()
        self._busy.clear()  # the loop that ran them ended first
        self._pending.clear()
        restorer, self._restorer = self._restorer, None
        if restorer is not None:
            await self._bounded_stop(restorer.stop(), "restore consumer")

    async def _bounded_stop(self, stopping: Awaitable[None], what: str) -> None:
        # A longer bound than a call's: a consumer whose stop is cut short may stay in the
        # group (heartbeating) with its partitions. Given up on, a fresh client replaces it.
        await _within(stopping, max(self._call_timeout, self._stall_seconds),
                      f"closing the {what}")

    async def _end(self, task: asyncio.Task[Any] | None, what: str) -> None:
        """Cancel `task` and wait for it, at most the call timeout (`_within`)."""
        if task is not None:
            task.cancel()
            await _within(task, self._call_timeout, what)

    def ready(self) -> bool:
        """Joined the group, every assigned partition restored and the engine not stalled."""
        return (self._joined and not self.stalled
                and all(tp in self._parts for tp in self._assigned))

    def set_context(self, context: EngineContext) -> None:
        self._context = _whole_resolved(context)
        for part in self._parts.values():
            part.engine.context = self._context

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The group consumer (None while stopped or between a restart's stop and start)."""
        return self._consumer

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
        bounded = self._bounded
        partitions = consumer.partitions_for_topic(self._topics.alerts)
        if not partitions:
            await bounded(consumer.topics())
            partitions = consumer.partitions_for_topic(self._topics.alerts) or set()
        tps = [TopicPartition(self._topics.alerts, p) for p in sorted(partitions)]
        end = await bounded(consumer.end_offsets(tps))
        for tp in tps:
            while True:
                if end[tp] == 0 or ((await bounded(consumer.committed(tp))) or 0) >= end[tp]:
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
        gone = set(tps)
        async with self._lock:  # waits for a restore in progress; no batch starts meanwhile
            self._assigned -= gone
            parts = [self._parts.pop(tp) for tp in list(self._parts) if tp in gone]
            batches = [task for tp, task in self._busy.items() if tp in gone]
            for tp in gone:
                self._pending.pop(tp, None)
        # Their batches finish (commit or abort) before the producers close; outside the lock,
        # which a failed batch takes to rebuild (it finds its partition gone and does not).
        if batches:
            await asyncio.wait(batches)
        async with self._lock:
            for part in parts:
                await self._stop_producer(part.producer)
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
                await self._stop_producer(old.producer)
        producers = {tp: AIOKafkaProducer(
            **client_kwargs(self._cfg),
            transactional_id=f"{self._cfg.group_id}-engine-{tp.partition}",
            client_id=f"incident-router-engine-{tp.partition}",
        ) for tp in tps}
        bounded = self._bounded
        try:
            # InitProducerId: fences and aborts a previous owner's open transaction.
            results = await asyncio.gather(*(bounded(p.start()) for p in producers.values()),
                                           return_exceptions=True)
            for tp, result in zip(list(producers), results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("partition %d: producer did not start: %s", tp.partition,
                                type(result).__name__)
                    await self._stop_producer(producers.pop(tp))
            if not producers:
                return False
            started = time.perf_counter()
            restored = await self._restore([tp.partition for tp in producers])
            self._metrics.restore_seconds.set(time.perf_counter() - started)
            committed = dict(zip(producers, await asyncio.gather(
                *(bounded(consumer.committed(tp)) for tp in producers)), strict=True))
        except BaseException:
            for producer in producers.values():
                await self._stop_producer(producer)
            raise
        for tp, producer in producers.items():
            engine, position = restored[tp.partition]
            group_offset = committed[tp]
            offset = max((o for o in (position, group_offset) if o is not None), default=None)
            self._positions.pop(tp, None)
            self._pending.pop(tp, None)
            self._seeks[tp] = self._seeks.get(tp, 0) + 1
            if offset is not None:
                consumer.seek(tp, offset)
            else:
                await bounded(consumer.seek_to_beginning(tp))
            self._parts[tp] = Partition(tp, engine, producer, offset or 0)
            consumer.resume(tp)
            self._progress(decided=False)
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
                             ids=IncidentIds(stride=count or self._cfg.partitions, offset=p),
                             digest_via_log=True)  # one digest for all partitions
                   for p in partitions}
        positions: dict[int, int | None] = dict.fromkeys(partitions)
        tps = [TopicPartition(self._topics.state, p) for p in partitions]
        restorer.assign(tps)
        bounded = self._bounded
        try:
            await bounded(restorer.seek_to_beginning(*tps))
            end = await bounded(restorer.end_offsets(tps))
            behind = {tp for tp in tps if end[tp] > 0}
            while behind:
                data = await bounded(restorer.getmany(*behind, timeout_ms=200,
                                                      max_records=_RESTORE_RECORDS))
                if data:
                    self._progress(decided=False)  # a long restore is not a stall
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
                    if await bounded(restorer.position(tp)) >= end[tp]:
                        behind.discard(tp)
        finally:
            restorer.pause(*tps)  # no fetching (long polls) between restores
        return {p: (engines[p], positions[p]) for p in partitions}

    async def _close(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            part = self._parts.pop(tp, None)
            if part is not None:
                await self._stop_producer(part.producer)

    async def _stop_producer(self, producer: AIOKafkaProducer) -> None:
        """Close a transactional producer; bounded, since a producer that cannot reach the
        broker may wait to flush (its open transaction is aborted by the next owner's start)."""
        await self._bounded_stop(producer.stop(), "transactional producer")

    async def _bounded(self, call: Awaitable[T]) -> T:
        """`call` (a broker request), TimeoutError after `engine_call_timeout_seconds`."""
        async with asyncio.timeout(self._call_timeout):
            return await call

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        """Fetch, and start a batch for each partition that has records (or a due timer) and
        no batch in progress; wake on whichever comes first: records, a batch done, a timer."""
        consumer = self._consumer
        assert consumer is not None
        fetch: asyncio.Task[tuple[dict[TopicPartition, list[Record]],
                                  dict[TopicPartition, int]]] | None = None
        try:
            while True:
                try:
                    await self._reopen_failed()
                    if fetch is None:
                        fetch = asyncio.create_task(self._fetch(consumer))
                    await asyncio.wait([fetch, *self._busy.values()],
                                       timeout=self._poll_timeout_ms() / 1000,
                                       return_when=asyncio.FIRST_COMPLETED)
                    if fetch.done():
                        done, fetch = fetch, None
                        data, seeks = done.result()
                        for tp, records in data.items():
                            # Fetched before a seek (a rebuild, which re-reads from the
                            # position it restored): not the partition's next records.
                            if seeks.get(tp) == self._seeks.get(tp):
                                self._pending.setdefault(tp, []).extend(records)
                    async with self._lock:
                        self._start_batches()
                        self._update_gauges()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # e.g. the broker is away; aiokafka reconnects
                    log.warning("engine loop: %s", type(exc).__name__)
                    await asyncio.sleep(1)
        finally:
            if fetch is not None:
                fetch.cancel()
            batches = list(self._busy.values())
            for task in batches:
                task.cancel()
            if batches:
                await asyncio.wait(batches)

    async def _fetch(self, consumer: AIOKafkaConsumer) -> tuple[
            dict[TopicPartition, list[Record]], dict[TopicPartition, int]]:
        """The next records, with the seek counts as they were returned (nothing runs in
        between: aiokafka returns only records at the position a seek left)."""
        data = await self._bounded(consumer.getmany(timeout_ms=1000,
                                                    max_records=self._max_records()))
        return data, dict(self._seeks)

    def _start_batches(self) -> None:
        """Start a batch for each partition that is free and has work, oldest work first, as
        long as the transaction budget allows; the others keep what they have for later."""
        now = self.clock()
        started = self.monotonic()
        for tp in [tp for tp in self._pending if tp not in self._parts]:
            del self._pending[tp]  # revoked, or being rebuilt (it re-reads from its position)
        ready: list[tuple[float, Partition, list[Record]]] = []
        for tp, part in self._parts.items():
            if tp in self._busy or part.fenced or started - part.started < self._interval:
                continue
            records = [r for r in self._pending.pop(tp, ()) if r.offset >= part.position]
            deadline = part.engine.next_deadline()
            if records:  # waiting since its oldest record was logged (CreateTime, ms)
                ready.append((records[0].timestamp / 1000, part, records))
            elif deadline is not None and deadline <= now:
                ready.append((deadline.timestamp(), part, records))
        self._budget_waits = False
        for _, part, records in sorted(ready, key=lambda w: w[0]):
            tp = part.tp
            if self._budget_waits or not self._budget.take(started):
                self._budget_waits = True  # its records stay next in line
                if records:
                    self._pending[tp] = records
                continue
            part.started = started
            task = asyncio.create_task(self._decide_safely(part, records, now),
                                       name=f"kafka-engine-{tp.partition}")
            self._busy[tp] = task
            task.add_done_callback(functools.partial(self._batch_done, tp))

    def _batch_done(self, tp: TopicPartition, task: asyncio.Task[None]) -> None:
        if self._busy.get(tp) is task:
            del self._busy[tp]

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
        """Sleep until the earliest timer of a partition with no batch in progress, or the end
        of a batch interval with records waiting (at most 1 s); new records and finished
        batches wake the loop earlier."""
        deadlines = [d for tp, p in self._parts.items()
                     if tp not in self._busy and not p.fenced and (d := p.engine.next_deadline())]
        seconds = 1.0
        if deadlines:
            seconds = (min(deadlines) - self.clock()).total_seconds()
        now = self.monotonic()
        for tp in self._pending:  # records waiting for a batch (interval 0: at once)
            part = self._parts.get(tp)
            if part is not None and tp not in self._busy and not part.fenced:
                seconds = min(seconds, part.started + self._interval - now)
        if self._budget_waits:  # work waits for the transaction budget
            seconds = max(seconds, self._budget.wait(now))
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
        """One step of the partition's engine (`runner.step_safely`): decide, commit, count;
        on a failure abort and rebuild the partition."""
        events = []
        take = self.fresh.take
        for r in records:
            event = take(r.value)
            if event is not None:
                events.append(event)
                continue
            try:
                events.append(decode_event(r.value or b""))
            except ValueError:
                log.error("partition %d offset %d: undecodable event skipped",
                          part.tp.partition, r.offset)
        position = records[-1].offset + 1 if records else None
        outcome = await step_safely(part.engine, _PartitionStore(self, part), events, position,
                                    now, self._metrics)
        if outcome is Outcome.IDLE:
            self._progress(decided=False)  # a due timer with nothing to say: handled

    async def _committed(self, part: Partition, batch: Batch, position: int | None) -> None:
        """`EngineStore.commit` of `part`: the transaction, then what follows from it."""
        views = self._views(part, batch)
        await self._commit(part, batch, views, position)
        if position is not None:
            part.position = position
        self._progress(decided=True)
        for key, value in views.items():
            if value is None:
                part.views.pop(key, None)
            else:
                part.views[key] = hash(value)

    async def _recover(self, part: Partition, exc: Exception) -> None:
        """`EngineStore.recover` of `part`: abort, then rebuild it from the changelog (or, when
        a newer owner fenced it, wait for the revocation)."""
        self._failing = True
        with contextlib.suppress(Exception):  # the transaction context aborted it already
            await self._bounded(part.producer.abort_transaction())
        if isinstance(exc, ProducerFenced):
            # A newer owner exists: stop here, the rebalance hands the partition over.
            log.warning("partition %d: fenced by a newer owner", part.tp.partition)
            part.fenced = True
            return
        log.warning("partition %d: transaction aborted (%s); restoring from the changelog",
                    part.tp.partition, type(exc).__name__)
        try:
            async with self._lock:  # no batch of another partition starts meanwhile
                if self._parts.get(part.tp) is part:  # not revoked meanwhile
                    await self._open(part.tp)  # False: the run loop tries again
        except Exception as again:
            log.warning("partition %d: restore failed (%s), retrying",
                        part.tp.partition, type(again).__name__)

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
                      position: int | None) -> None:
        producer = part.producer
        topics = self._topics
        p = part.tp.partition
        # Keyed by group key like the alerts topic: the same partition when the counts agree.
        n_part = self._co_partition(topics.notifications, p)
        v_part = self._co_partition(topics.alerts_view, p)
        incidents = [(i, v.model_dump_json().encode()) for i, v in batch.incidents.items()]
        # One bound for the whole transaction (begin, sends, commit): after a broker crash a
        # transactional producer can wait forever on a coordinator; the abort and rebuild in
        # `_decide_safely` recover, and the next owner's producer start fences this one. The
        # outer bound covers the context's abort on the way out of a failed transaction, which
        # waits for the broker with no bound of its own.
        async with (asyncio.timeout(2 * self._call_timeout),
                    asyncio.timeout(self._call_timeout), producer.transaction()):
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
            for incident_id, value in incidents:
                sent.append(await send(topics.incidents_view, key=incident_id.encode(),
                                       value=value))
            if position is not None:
                sent.append(await send(topics.state, key=_POSITION_KEY_BYTES, partition=p,
                                       value=b"%d" % position))
            results = await asyncio.gather(*sent, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            if self.before_commit is not None:
                await self.before_commit(part.tp)
        metas = results[first_incident:first_incident + len(incidents)]
        for (incident_id, value), meta in zip(incidents, metas, strict=True):
            # This replica reads its own incident writes at once (the tail follows).
            self.on_incident(incident_id, value, meta.partition, meta.offset)  # type: ignore[union-attr]
        if batch.notifications:
            self.on_outbox()
        if batch.commands and self.on_commands is not None:
            await self.on_commands(batch.commands)
        if position is not None:
            self._positions[part.tp] = position
            self._offsets_due.set()

    # --- group offsets ---------------------------------------------------------------------

    async def _commit_offsets(self) -> None:
        """Commit decided positions as the group's offsets, one request for all partitions,
        at most every `_OFFSETS_EVERY`: what is decided meanwhile goes with the next one."""
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
            await asyncio.sleep(_OFFSETS_EVERY)

    async def _commit_positions(self, consumer: AIOKafkaConsumer) -> None:
        owned = consumer.assignment()
        offsets = {tp: o for tp, o in self._positions.items() if tp in owned}
        self._positions.clear()
        if offsets:
            await self._bounded(consumer.commit(offsets))

    # --- the watchdog ----------------------------------------------------------------------

    async def _watch(self) -> None:
        """Check for a stall a few times per stall limit; restart the clients on one."""
        interval = min(1.0, self._stall_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. a restart while the broker is still away
                log.warning("engine watchdog: %s", type(exc).__name__)

    async def _check(self) -> None:
        """Stalled stays set through the restart and the restore, until a decision commits
        or nothing waits: readiness comes back when the engine decides again."""
        limit = stall_limit(self._stall_seconds, self._restarts_in_a_row)
        if self._consumer is None:  # the last restart could not start the clients: again
            if self.monotonic() - self._last_progress >= limit:
                self._restarts_in_a_row += 1
                await self._restart()
            return
        lag = await self._broker_lag()
        overdue = self._overdue()
        now = self.monotonic()
        if not waiting(lag, overdue):
            self._progress(decided=True)
        elif stalled(lag, overdue, self._last_progress, now, limit):
            self._mark_stalled(True)
            log.warning("engine stalled: %s records wait%s and nothing was decided for %.0fs; "
                        "restarting the engine's consumer and producers",
                        "unknown" if lag is None else lag,
                        " (a timer is overdue)" if overdue else "", now - self._last_progress)
            self._restarts_in_a_row += 1
            await self._restart()

    def _progress(self, *, decided: bool) -> None:
        """The engine moved (or was seen idle): the stall clock starts again. Only a decision
        (or idleness) ends a stall; a restore read does not, nor counts at all when it
        rebuilds a partition whose transaction failed."""
        if decided:
            self._failing = False
            self._restarts_in_a_row = 0
            self._mark_stalled(False)
        elif self._failing:
            return
        self._last_progress = self.monotonic()

    def _mark_stalled(self, stuck: bool) -> None:
        if stuck != self.stalled:
            self.stalled = stuck
            self._metrics.stalled.set(int(stuck))

    def _overdue(self) -> bool:
        """Work that is not records: a timer past its deadline (the loop takes it within a
        second when it can commit), or a partition fenced and never revoked."""
        now = self.clock()
        for part in list(self._parts.values()):
            deadline = part.engine.next_deadline()
            if part.fenced or (deadline is not None and deadline <= now):
                return True
        return False

    async def _broker_lag(self) -> int | None:
        """Undecided records on the owned partitions, from the broker's end offsets (the
        consumer's own view goes stale when it stops fetching). None when it is unknown: not
        in the group (yet), a partition not restored, or the broker did not answer."""
        consumer = self._consumer
        if consumer is None or not self._joined:
            return None
        parts = dict(self._parts)
        if any(tp not in parts for tp in self._assigned):
            return None
        if not parts:
            return 0
        try:
            # Bounded by the stall limit too: the check must not wait longer than it watches.
            async with asyncio.timeout(min(self._call_timeout, self._stall_seconds)):
                end = await consumer.end_offsets(list(parts))
        except Exception as exc:
            log.info("engine watchdog: end offsets unavailable (%s)", type(exc).__name__)
            return None
        if any(tp not in end for tp in parts):
            return None
        lag: int = sum(max(0, end[tp] - part.position) for tp, part in parts.items())
        self.last_lag = lag
        self._metrics.lag.set(lag)
        return lag

    async def _restart(self) -> None:
        """Drop the wedged consumer and producers and start fresh ones: the new member rejoins
        the group and restores its partitions from the changelog, as after a process restart.

        The loop is cancelled without waiting for the lock: the batch in progress is what hangs.
        Its transaction never commits (the new producers fence it), so nothing is decided twice.
        """
        self._metrics.restarts.inc()
        for opener in list(self._openers):
            await self._end(opener, "a partition restore")
        await self._end(self._task, "the engine loop")
        self._task = None
        await self._end(self._offsets_task, "the offset committer")
        self._offsets_task = None
        self._lock = asyncio.Lock()  # a cancelled holder may still be unwinding on the old one
        await self._stop_clients()
        self._metrics.owned_partitions.set(0)
        try:
            await self._start_clients()
        except Exception:  # the broker is still away: `_check` tries again
            await self._stop_clients()
            raise
        log.info("engine consumer and producers restarted; rejoining the group")


async def _within(work: Awaitable[Any], seconds: float, what: str) -> None:
    """Wait for `work` (a client's stop, a cancelled task) at most `seconds`, then cancel it
    and leave it behind. Waited on as a task, not under `asyncio.timeout`: aiokafka's stop()
    suppresses a CancelledError where it awaits its own tasks, which would swallow the
    timeout's and leave the watchdog waiting on the wedged client it is replacing."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_ignore_outcome)
        log.warning("%s did not finish within %gs; left behind", what, seconds)
    elif not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("%s failed: %s", what, type(exc).__name__)


def _ignore_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: it was given up on


def _position(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        log.error("ignoring an unreadable alerts position %r", value[:32])
        return None


_POSITION_KEY_BYTES = POSITION_KEY.encode()


@dataclass(frozen=True)
class _PartitionStore:
    """The `runner.EngineStore` of one owned partition."""

    runner: KafkaEngineRunner
    part: Partition

    async def commit(self, batch: Batch, position: int | None) -> None:
        await self.runner._committed(self.part, batch, position)

    async def recover(self, error: Exception) -> None:
        await self.runner._recover(self.part, error)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Passes one consumer's rebalances to the runner, as long as it is the runner's consumer:
    a consumer the watchdog replaced (and whose stop timed out) must not touch the new one's
    partitions."""

    def __init__(self, runner: KafkaEngineRunner, consumer: AIOKafkaConsumer) -> None:
        self._runner = runner
        self._consumer = consumer

    def _current(self) -> bool:
        return self._runner.consumer is self._consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self._current():
            await self._runner.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._current():
            await self._runner.assigned(assigned)

