"""A compacted topic tailed into memory, and the plain producer that writes to such topics.

Each replica reads the whole topic (no consumer group: every partition, from the beginning,
`read_committed`) into a dict, so every replica answers reads locally with the full view: the
dead letters, the delivery records, the current-alerts view.

Local writes are applied to the dict as soon as the broker acknowledges them, so a replica
reads its own writes at once. The tail may still be behind and deliver an older record of the
same key later; the offset of the local write tells that record apart and it is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata

from router.backends.kafka.topics import client_kwargs
from router.backends.tasks import cancelled
from router.config import KafkaBackendConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
# A tail's fetch is answered once this much is there or after the wait: under load one fetch
# per wait instead of one per commit (each engine transaction writes the alerts view, each
# delivery a record), at the price of other replicas' views being up to the wait behind (a
# replica reads its own writes at once, `applied`).
_TAIL_MIN_BYTES = 256 * 1024
_TAIL_WAIT_MS = 100


class KafkaWriter:
    """An idempotent producer (acks=all) for records that need no transaction."""

    def __init__(self, cfg: KafkaBackendConfig, client_id: str) -> None:
        self._cfg = cfg
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **client_kwargs(self._cfg), enable_idempotence=True, acks="all",
            client_id=self._client_id,
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send(self, topic: str, key: str, value: bytes | None) -> RecordMetadata:
        """Returns once the broker acknowledged the record."""
        if self._producer is None:
            raise RuntimeError("kafka writer is not started")
        return await self._producer.send_and_wait(topic, value=value, key=key.encode())


class CompactedTable(Generic[T]):
    """`key -> decoded value` of a compacted topic; tombstones delete."""

    def __init__(self, cfg: KafkaBackendConfig, topic: str, decode: Callable[[bytes], T],
                 writer: KafkaWriter | None = None, *, timed: bool = False) -> None:
        self._cfg = cfg
        self.topic = topic
        self._decode = decode
        self._writer = writer
        self.rows: dict[str, T] = {}
        # timed: key -> when its row was written (epoch seconds), for `forget_older`.
        self._times: dict[str, float] | None = {} if timed else None
        # key -> (partition, offset) of the latest local write not yet seen by the tail.
        self._written: dict[str, tuple[int, int]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()
        # Told of every change of a row (None: deleted), for what is kept up to date from it.
        self.on_change: Callable[[str, T | None], None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, partitions: int) -> None:
        """Start tailing the topic's `partitions`; returns once the table holds everything
        committed so far."""
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._cfg), group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
            fetch_min_bytes=_TAIL_MIN_BYTES, fetch_max_wait_ms=_TAIL_WAIT_MS,
        )
        await consumer.start()
        self._consumer = consumer
        self._tps = [TopicPartition(self.topic, p) for p in range(partitions)]
        consumer.assign(self._tps)
        await consumer.seek_to_beginning(*self._tps)
        self._task = asyncio.create_task(self._tail(), name=f"tail-{self.topic}")
        await self.sync()

    async def stop(self) -> None:
        await cancelled(self._task)
        self._task = None
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    # --- reading ---------------------------------------------------------------------------

    async def sync(self) -> None:
        """Until the table has read everything committed to the topic before this call."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError(f"table {self.topic} is not started")
        end = await consumer.end_offsets(self._tps)
        while True:
            behind = False
            for tp in self._tps:
                if await consumer.position(tp) < end[tp]:
                    behind = True
                    break
            if not behind:
                return
            if self._task is not None and self._task.done():
                raise RuntimeError(f"table {self.topic} stopped tailing")
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._progress.wait()

    async def _tail(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            try:
                data = await consumer.getmany(timeout_ms=1000, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is away; the consumer reconnects
                log.warning("tailing %s failed: %s", self.topic, type(exc).__name__)
                await asyncio.sleep(1)
                continue
            for records in data.values():
                self._apply(records)
            self._progress.set()

    def _apply(self, records: Iterable[ConsumerRecord[bytes, bytes]]) -> None:
        for r in records:
            if r.key is None:
                continue
            key = r.key.decode()
            written = self._written.get(key)
            if written is not None:
                if (r.partition, r.offset) < written:
                    continue  # older than what this replica wrote and already applied
                del self._written[key]
            self._set(key, r.value, r.timestamp / 1000 if r.timestamp else time.time())

    def _set(self, key: str, value: bytes | None, at: float) -> None:
        if value is None:
            if self.rows.pop(key, None) is not None and self.on_change is not None:
                self.on_change(key, None)
            if self._times is not None:
                self._times.pop(key, None)
            return
        try:
            row = self.rows[key] = self._decode(value)
        except ValueError:
            log.error("skipping an undecodable record in %s", self.topic)
            return
        if self.on_change is not None:
            self.on_change(key, row)
        if self._times is not None:
            self._times[key] = at

    def forget_older(self, cutoff: float) -> int:
        """Drop the rows written before `cutoff` (epoch seconds) from memory only, without a
        tombstone: for a topic the broker deletes by age (`retention.ms`), so that memory
        does not keep what a restart would no longer read. Returns how many went."""
        times = self._times
        if times is None:
            raise RuntimeError(f"table {self.topic} does not keep write times")
        old = [key for key, at in times.items() if at < cutoff]
        for key in old:
            del times[key]
            if self.rows.pop(key, None) is not None and self.on_change is not None:
                self.on_change(key, None)
        return len(old)

    # --- writing ---------------------------------------------------------------------------

    async def put(self, key: str, value: bytes | None) -> None:
        """Write (None: delete) and apply locally once the broker acknowledged it."""
        if self._writer is None:
            raise RuntimeError(f"table {self.topic} is read-only")
        meta = await self._writer.send(self.topic, key, value)
        self.applied(key, value, meta.partition, meta.offset)

    def applied(self, key: str, value: bytes | None, partition: int, offset: int) -> None:
        """A write made elsewhere in this process (e.g. in a transaction) was committed."""
        self._written[key] = (partition, offset)
        self._set(key, value, time.time())
