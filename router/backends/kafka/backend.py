"""Kafka backend (`backend: kafka`): the intake log and the backend that ties the parts together.

Every accepted event goes to `<prefix>.alerts`, keyed by `model.event_key` (the group key), so
all events of one incident land in one partition and reach one engine owner. The parts:
`topics` (layout, creation, client settings), `engine` (the consumer group of
engines with per-partition state and transactions), `outbox` (outbox, dead letters and
delivery records for the Dispatcher), `table` (compacted topics tailed into memory),
`retention` (what leaves those tables after its age).
See docs/kafka.md.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Generic, TypeVar

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from router.backends.base import DeliveryProgress, LogEvent, LogUnavailable, StoreUnavailable
from router.backends.filters import AlertField, AlertQuery, LabelTest, value_of
from router.backends.gate import IntakeGate, over_limits
from router.backends.kafka.engine import KafkaEngineRunner, decode_view
from router.backends.kafka.fresh import FreshEvents
from router.backends.kafka.outbox import KafkaDeliveryStore, KafkaOutbox, decode_dead_letter
from router.backends.kafka.retention import KafkaRetention
from router.backends.kafka.table import CompactedTable, KafkaWriter
from router.backends.kafka.topics import (
    TopicLayoutError,
    Topics,
    check_layout,
    client_kwargs,
    decode_event,
    encode_event,
    ensure_topics,
    init_topics,
    topic_names,
    topic_specs,
)
from router.backends.pages import Page, SortKey, page_of
from router.backends.tasks import cancelled
from router.config import Config, KafkaBackendConfig
from router.delivery.outbox import DeadLetter, DeadLetters
from router.engine.noise import NOISE_KEY
from router.engine.state import EngineContext
from router.incidents import Incident
from router.metrics import EngineMetrics
from router.model import Alert, CommandEvent, event_key, utcnow
from router.noise.muters import labels_of
from router.noise.silences import Silence

__all__ = [
    "IntakeGate",
    "KafkaBackend",
    "KafkaLog",
    "TopicLayoutError",
    "Topics",
    "check_layout",
    "client_kwargs",
    "decode_event",
    "encode_event",
    "ensure_topics",
    "init_topics",
    "topic_names",
    "topic_specs",
]

log = logging.getLogger(__name__)

_PARTITIONER = DefaultPartitioner()
T = TypeVar("T")
_PARTITION_CACHE = 100_000
_DECODED_CACHE = 200_000  # distinct keys whose partition the log remembers
_CLI_METADATA_WAIT = 10.0  # seconds `dlq` waits for the topics' metadata

# --- the log ---------------------------------------------------------------------------------


class KafkaLog:
    """`router.backends.base.Log` on the alerts topic: idempotent producer, acks=all.

    Partitioning is aiokafka's default (murmur2 of the key, as the Java client), so a key's
    partition number is stable and the same in every co-partitioned topic. The log computes
    it itself, once per distinct key (a bounded cache: group keys repeat).

    Records of concurrent appends share the producer's batches: aiokafka keeps one produce
    request in flight per broker and everything handed over meanwhile goes out in the next.

    A timeout does not cancel what was handed to the producer: with idempotence the producer
    keeps retrying those batches, so events of an append that raised LogUnavailable may still
    reach the log later. The source retries after the 503 and the engine deduplicates.
    """

    def __init__(self, cfg: KafkaBackendConfig, gate: IntakeGate | None = None,
                 fresh: FreshEvents | None = None) -> None:
        self._cfg = cfg
        # What is appended, for this process's engine (fresh.py); a private one if none.
        self._fresh = fresh if fresh is not None else FreshEvents(0)
        self._topic = topic_names(cfg.topic_prefix).alerts
        self._timeout = cfg.produce_timeout_seconds
        self._producer: AIOKafkaProducer | None = None
        self._gate = gate
        self._partitions: list[int] = []
        self._partition_of: dict[bytes, int] = {}

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **client_kwargs(self._cfg),
            enable_idempotence=True,
            acks="all",
            client_id="incident-router-intake",
        )
        await producer.start()
        self._producer = producer
        try:
            self._partitions = sorted(await producer.partitions_for(self._topic))
        except Exception as exc:  # the producer hashes per record until metadata is there
            log.warning("no partitions of %s yet: %s", self._topic, type(exc).__name__)

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def append(self, events: Sequence[LogEvent]) -> None:
        if not events:
            return
        producer = self._producer
        if producer is None:
            raise LogUnavailable("kafka log is not started")
        if self._gate is not None:
            await self._gate.wait()
        try:
            async with asyncio.timeout(self._timeout):
                await self._send_all(producer, events)
        except TimeoutError:
            raise LogUnavailable(
                f"kafka did not acknowledge {len(events)} event(s) on {self._topic} "
                f"within {self._timeout:g}s", maybe_stored=True
            ) from None
        except KafkaError as exc:
            raise LogUnavailable(  # earlier events of the same append may be in
                f"kafka rejected the append to {self._topic}: {type(exc).__name__}",
                maybe_stored=len(events) > 1,
            ) from exc

    async def _broadcast(self, producer: AIOKafkaProducer, events: Sequence[LogEvent]) -> None:
        """Noise commands (silences, inhibitors) go to every partition, so that every engine
        holds them; other events to their key's partition, in order."""
        if not self._partitions:
            self._partitions = sorted(await producer.partitions_for(self._topic))
        acks = []
        for event in events:
            key, value = self._encode(event)
            targets = self._partitions if event_key(event) == NOISE_KEY else [
                self._partition(key)]
            for p in targets:
                acks.append(await producer.send(self._topic, value=value, key=key, partition=p))
        for result in await asyncio.gather(*acks, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    def _encode(self, event: LogEvent) -> tuple[bytes, bytes]:
        key, value = encode_event(event)
        self._fresh.put(value, event)
        return key, value

    def _partition(self, key: bytes) -> int | None:
        partitions = self._partitions
        if not partitions:
            return None
        cache = self._partition_of
        p = cache.get(key)
        if p is None:
            if len(cache) >= _PARTITION_CACHE:
                cache.clear()
            p = cache[key] = _PARTITIONER(key, partitions, partitions)
        return p

    async def _send_all(self, producer: AIOKafkaProducer, events: Sequence[LogEvent]) -> None:
        # Hand every record to the producer first (they batch together), then await each ack.
        send = producer.send
        topic = self._topic
        if any(event_key(e) == NOISE_KEY for e in events):
            await self._broadcast(producer, events)
            return
        if len(events) == 1:
            key, value = self._encode(events[0])
            await (await send(topic, value=value, key=key, partition=self._partition(key)))
            return
        acks = []
        for event in events:
            key, value = self._encode(event)
            acks.append(await send(topic, value=value, key=key, partition=self._partition(key)))
        results = await asyncio.gather(*acks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


# --- the backend -----------------------------------------------------------------------------


@asynccontextmanager
async def dead_letters(config: Config, cfg: KafkaBackendConfig) -> AsyncIterator[DeadLetters]:
    """The dead-letter store alone, for `incident-router dlq` in a process of its own: the
    dead-letter topic tailed into memory, and replays written to the outbox topic in one
    transaction with their tombstones. It joins no consumer group, so the running replicas
    keep their partitions; their delivery consumers take the replayed notifications."""
    topics = topic_names(cfg.topic_prefix)
    dead: CompactedTable[DeadLetter] = CompactedTable(cfg, topics.notifications_dlq,
                                                      decode_dead_letter)
    records: CompactedTable[bytes] = CompactedTable(cfg, topics.delivery_records, bytes)
    outbox = KafkaOutbox(cfg, dead, records)  # never started: lists and replays only
    try:
        try:
            counts = await check_layout(cfg, visible_within=_CLI_METADATA_WAIT)
            await dead.start(counts[dead.topic])
        except (KafkaError, TopicLayoutError) as exc:
            raise StoreUnavailable(
                f"kafka dead letters on {dead.topic} unavailable: {exc}") from exc
        yield outbox
    finally:
        await outbox.stop()
        await dead.stop()


def build(config: Config, cfg: KafkaBackendConfig, context: EngineContext,
          metrics: EngineMetrics, registry: CollectorRegistry | None = None) -> KafkaBackend:
    """The backend `cfg` (the `backend:` section of `config`) describes; its metrics are the
    engine's (`registry` is for a backend's own, and Kafka has none)."""
    return KafkaBackend(cfg, context, metrics)


class KafkaBackend:
    """`router.backends.base.Backend` on Kafka: N replicas in one consumer group."""

    def __init__(self, cfg: KafkaBackendConfig, context: EngineContext, metrics: EngineMetrics,
                 *, clock: Callable[[], datetime] = utcnow) -> None:
        self.cfg = cfg
        self.topics = topic_names(cfg.topic_prefix)
        self.gate = IntakeGate(self._behind, cfg.intake_max_wait_seconds)
        fresh = FreshEvents()
        self.log = KafkaLog(cfg, self.gate, fresh)
        self._writer = KafkaWriter(cfg, client_id="incident-router-delivery-writer")
        # Views stay raw bytes until read: every decision writes them, few are ever read.
        self._view: CompactedTable[bytes] = CompactedTable(cfg, self.topics.alerts_view, bytes)
        # Each alert with its place in the lists (computing it costs more than comparing).
        self._view_cache = _Decoded(_keyed_view)
        self._seen_labels: dict[int, tuple[Alert, Mapping[str, str]]] = {}  # alerts_matching
        self._statuses = _StatusTotals()
        self._view.on_change = self._statuses.change
        self._dead: CompactedTable[DeadLetter] = CompactedTable(
            cfg, self.topics.notifications_dlq, decode_dead_letter, self._writer)
        self._records: CompactedTable[bytes] = CompactedTable(
            cfg, self.topics.delivery_records, bytes, self._writer, timed=True)
        # Written by the engines' transactions, and tombstoned by retention after its age.
        self._incidents: CompactedTable[bytes] = CompactedTable(
            cfg, self.topics.incidents_view, bytes, self._writer)
        self._incident_cache = _Decoded(Incident.model_validate_json)
        self.retention = KafkaRetention(cfg, self._incidents,
                                        lambda: self._incident_rows(None, None),
                                        self._records, clock)
        self.engine = KafkaEngineRunner(cfg, context, metrics, clock=clock)
        self.engine.fresh = fresh
        self.engine.on_incident = self._incidents.applied
        self.engine.on_progress = self.gate.poke
        self.engine.on_commands = self._engine_commands
        self._commands_sent: asyncio.Task[None] | None = None
        # The app points engine.on_outbox at the Dispatcher; new outbox items arrive through
        # the delivery consumer, so that is where the wake-up comes from.
        self.outbox = KafkaOutbox(cfg, self._dead, self._records,
                                  on_items=lambda: self.engine.on_outbox())
        self.records = KafkaDeliveryStore(self._records)
        self.outbox.on_done = self.gate.poke
        self._started = False

    def _behind(self) -> bool:
        return over_limits(self.cfg, self.engine.last_lag, self.outbox.backlog)

    def watch_delivery(self, delivery: DeliveryProgress) -> None:
        """Nothing to watch: the outbox counts its own backlog and pokes the gate itself."""

    async def start(self) -> None:
        if self.cfg.create_topics:
            counts = await ensure_topics(self.cfg)
        else:
            counts = await check_layout(self.cfg)
        self.engine.partition_counts = dict(counts)
        try:
            await self.log.start()
            await self._writer.start()
            for table in (self._view, self._dead, self._records, self._incidents):
                await table.start(counts[table.topic])
            await self.outbox.start()
            await self.engine.start()
            await self.retention.start()
        except BaseException:
            await self.stop()
            raise
        self._started = True

    async def _engine_commands(self, commands: list[CommandEvent]) -> None:
        """Commands an engine addressed to the others (incident inhibition: noise to every
        partition, timeline notes to the incident's), appended after its commit, in order, off
        the engine's loop (the intake gate may hold appends while the engine catches up). One
        lost on a crash fails open: the other partitions page rather than stay quiet."""
        previous = self._commands_sent

        async def send() -> None:
            if previous is not None:
                await asyncio.wait([previous])  # in order; its failure was logged
            try:
                await self.log.append(commands)
            except LogUnavailable as exc:
                log.warning("engine commands not appended (%d): %s", len(commands), exc)

        self._commands_sent = asyncio.create_task(send(), name="kafka-engine-commands")

    async def commands_appended(self) -> None:
        """Wait until the engine commands handed over so far are appended (tests)."""
        if self._commands_sent is not None:
            await asyncio.wait([self._commands_sent])

    async def stop(self) -> None:
        """Stop every part that started, in reverse order (also after a failed start)."""
        self._started = False
        await self.retention.stop()
        await self.engine.stop()
        if self._commands_sent is not None:
            await cancelled(self._commands_sent)
        await self.outbox.stop()
        for table in (self._incidents, self._records, self._dead, self._view):
            await table.stop()
        await self._writer.stop()
        await self.log.stop()

    async def ready(self) -> bool:
        """Started, and every engine partition this replica owns is restored."""
        return self._started and self.engine.ready()

    async def wait_ready(self, within: float = 60.0) -> None:
        """Until `ready()` (tests, tools); TimeoutError after `within` seconds."""
        async with asyncio.timeout(within):
            while True:
                if await self.ready():
                    return
                await asyncio.sleep(0.05)

    async def current_alerts(
        self, status: str | None = None, source: str | None = None, limit: int = 1000
    ) -> list[Alert]:
        """From the alerts view every replica tails: all groups, whoever owns them."""
        rows = self._alert_rows(status, source)
        rows.sort(key=_first, reverse=True)
        return [a for _, a in rows[:limit]]

    async def incidents(self, status: str | None = None, limit: int = 200,
                        group_key: str | None = None) -> list[Incident]:
        """From the incidents view every replica tails; newest (opened_at) first."""
        rows = self._incident_rows(status, group_key)
        rows.sort(key=lambda i: (i.opened_at, i.id), reverse=True)
        return rows[:limit]

    async def incident_page(self, status: str | None = None, group_key: str | None = None,
                            limit: int = 100, cursor: str | None = None) -> Page[Incident]:
        return page_of(self._incident_rows(status, group_key), _incident_key, "incidents",
                       limit, cursor)

    async def alert_page(self, status: str | None = None, source: str | None = None,
                         limit: int = 100, cursor: str | None = None) -> Page[Alert]:
        return _alert_page(self._alert_rows(status, source), limit, cursor)

    # --- the console's filtered and summary reads, on the in-memory views ------------------

    async def alert(self, key: str) -> Alert | None:
        return next((a for (_, k), a in self._alert_rows(None, None) if k == key), None)

    async def alert_search(self, query: AlertQuery, limit: int = 100,
                           cursor: str | None = None) -> Page[Alert]:
        keeps = query.predicate()
        found = [r for r in self._alert_rows(query.status, query.source) if keeps(r[1])]
        return _alert_page(found, limit, cursor)

    async def alert_counts(self, by: AlertField, query: AlertQuery) -> dict[str, int]:
        if by == "status" and not query.labels and set(query.given()) <= {"status"}:
            return self._status_counts(query.status)
        counts: dict[str, int] = {}
        keeps = query.predicate()
        for _, a in self._alert_rows(query.status, query.source):
            if keeps(a):
                value = value_of(a, by)
                counts[value] = counts.get(value, 0) + 1
        return counts

    async def alerts_matching(self, query: AlertQuery, keeps: LabelTest,
                              limit: int = 100) -> Page[Alert]:
        # The view holds decoded alerts already: their labels cost nothing more to read.
        # (Status and source are `_alert_rows`' filter; the other fields and the labels' only
        # when given: this runs once per alert.)
        fields = query.model_copy(update={"labels": (), "ranges": (), "status": None,
                                          "source": None})
        fields_keep = fields.predicate() if fields.given() else None
        labels_keep = query.label_predicate() if query.labels or query.ranges else None
        found = []
        # Each alert's labels_of from the last scan, by id (the entry holds the alert, so the
        # id stays its own); kept for the alerts this scan saw, which the view holds anyway.
        cache, self._seen_labels = self._seen_labels, {}
        for row in self._alert_rows(query.status, query.source):
            alert = row[1]
            if fields_keep is None or fields_keep(alert):
                hit = cache.get(id(alert))
                if hit is None or hit[0] is not alert:
                    hit = (alert, labels_of(alert))
                self._seen_labels[id(alert)] = hit
                if (labels_keep is None or labels_keep(hit[1])) and keeps(hit[1]):
                    found.append(row)
        return Page(items=[a for _, a in heapq.nlargest(limit, found, key=_first)],
                    next_cursor=None, total=len(found))

    async def urgent_incidents(self, limit: int = 100, offset: int = 0) -> list[Incident]:
        rows = self._incident_rows("open", None)
        rows.sort(key=lambda i: (i.severity.rank, i.opened_at, i.id))
        return rows[offset:offset + limit]

    async def incident_counts(self, status: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for i in self._incident_rows(status, None):
            counts[i.severity.value] = counts.get(i.severity.value, 0) + 1
        return counts

    def _status_counts(self, status: str | None) -> dict[str, int]:
        """Alerts by status, kept up to date as the alerts view changes (`_StatusTotals`)."""
        return {value: n for value, n in self._statuses.totals.items()
                if n and (not status or value == status)}

    def _alert_rows(self, status: str | None, source: str | None) -> list[_AlertRow]:
        decode = self._view_cache.get
        return [
            row for key, raw in list(self._view.rows.items()) for row in decode(key, raw)
            if (not status or row[1].status.value == status)
            and (not source or row[1].source == source)
        ]

    def _incident_rows(self, status: str | None, group_key: str | None) -> list[Incident]:
        decode = self._incident_cache.get
        return [
            i for i in (decode(k, raw) for k, raw in list(self._incidents.rows.items()))
            if (not status or i.status.value == status
                or (status == "open" and i.resolved_at is None))
            and (not group_key or i.group_key == group_key)
        ]

    async def incident(self, incident_id: str) -> Incident | None:
        raw = self._incidents.rows.get(incident_id)
        return None if raw is None else self._incident_cache.get(incident_id, raw)

    async def silences(self) -> list[Silence]:
        # Every partition's engine holds them all (noise commands reach every partition);
        # the newest version of each, in case one partition is behind.
        return self.engine.silences()


def _incident_key(i: Incident) -> SortKey:
    return (i.opened_at.timestamp(), i.id)


def _alert_key(a: Alert) -> SortKey:
    return (a.event_time.timestamp(), a.key)


_AlertRow = tuple[SortKey, Alert]  # an alert with its `_alert_key`


def _keyed_view(raw: bytes) -> list[_AlertRow]:
    return [(_alert_key(a), a) for a in decode_view(raw)]


def _statuses(raw: bytes) -> dict[str, int]:
    """Alerts per status of one alerts-view value (`encode_view`), without validating them."""
    counts: dict[str, int] = {}
    for alert in orjson.loads(raw):
        counts[alert["status"]] = counts.get(alert["status"], 0) + 1
    return counts


class _StatusTotals:
    """Alerts per status over the whole alerts view, updated per changed view value: intake's
    active-alert cap asks every second, and a pass over every group (even with each value's
    counts cached) grew with the groups held, 5.4% of the samples of the e2e row at 500
    alerts/s after a few thousand groups."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self._of: dict[str, dict[str, int]] = {}  # group key -> its value's counts

    def change(self, key: str, raw: bytes | None) -> None:
        totals = self.totals
        for value, n in self._of.pop(key, {}).items():
            totals[value] -= n
        if raw is not None:
            counts = self._of[key] = _statuses(raw)
            for value, n in counts.items():
                totals[value] = totals.get(value, 0) + n


def _first(row: _AlertRow) -> SortKey:
    return row[0]


def _alert_page(rows: list[_AlertRow], limit: int, cursor: str | None) -> Page[Alert]:
    page = page_of(rows, _first, "alerts", limit, cursor)
    return Page(items=[a for _, a in page.items], next_cursor=page.next_cursor,
                total=page.total)


class _Decoded(Generic[T]):
    """Decoded values of a raw table, decoded on first read and again only once changed."""

    def __init__(self, decode: Callable[[bytes], T]) -> None:
        self._decode = decode
        self._cache: dict[str, tuple[bytes, T]] = {}

    def get(self, key: str, raw: bytes) -> T:
        hit = self._cache.get(key)
        if hit is not None and hit[0] is raw:
            return hit[1]
        value = self._decode(raw)
        if len(self._cache) > _DECODED_CACHE:
            self._cache.clear()
        self._cache[key] = (raw, value)
        return value
