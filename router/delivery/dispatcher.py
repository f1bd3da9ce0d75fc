"""The Dispatcher: outbox -> per-receiver, per-incident lanes -> sink, with retries and limits.

Guarantees
- One slow or failing receiver never blocks another: every (receiver, group key) is its own
  lane; a receiver runs at most `concurrency` lanes at once, on as many worker tasks of its
  own, and lanes waiting for a worker start in the order they appeared.
- Order per incident: a lane delivers strictly one item after another, retries included, so
  a resolution never overtakes its trigger. If an item is dead-lettered, the later items of
  that lane park behind it (reason `held`) and a replay sends them again in order.
- Rate limits: each receiver has a token bucket; bursts wait instead of failing, and a vendor's
  Retry-After pauses the whole receiver.
- Drain (SIGTERM): `drain()` takes nothing more from the outbox and starts no new send; the
  sends in flight finish and are recorded (bounded by a grace period), so a rolling restart
  posts nothing twice. Items not yet sent stay pending and go out after the restart.
- Handover (a Kafka rebalance moves outbox partitions to another replica): `release(ids)`
  drops the items not being sent at once and lets the sends in flight finish and be recorded
  (bounded by a timeout) before the outbox lets the partitions go, so the new owner, which
  reads the records first, does not post them again.
- Idempotency: the delivery record is written before the outbox is told (or with it, in one
  transaction, when the outbox can: `RecordingOutbox`), and checked before sending, so an item
  that comes back after a crash is not posted twice. A store that can (`BatchDeliveryStore`)
  is asked once per batch taken from the outbox rather than once per item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from router.delivery.metrics import DeliveryMetrics
from router.delivery.outbox import (
    DeadLetters,
    HandingOverOutbox,
    Outbox,
    OutboxItem,
    RecordingOutbox,
    Released,
)
from router.delivery.ratelimit import TokenBucket
from router.delivery.records import BatchDeliveryStore, DeliveryStore, sending_group
from router.delivery.result import DeliveryResult
from router.delivery.retry import retry_after
from router.delivery.sink import Receiver
from router.model import Notification

log = logging.getLogger("router.delivery")

Lane = tuple[str, str]


class Draining(Exception):
    """Raised in a worker instead of starting a send (or a retry) once the drain began."""


class GivenUp(Draining):
    """Raised in a worker instead of starting a send (or a retry) of an item `release()` gave
    up: it belongs to another process now."""


@dataclass(frozen=True)
class DrainReport:
    """What `Dispatcher.drain` did: sends it let finish, sends the grace period cut off (not
    recorded, so they go out again after a restart), and how long it took."""

    finished: int
    cut_off: int
    seconds: float


def describe(result: DeliveryResult) -> str:
    """A one-line reason for the DLQ and logs (vendor text was redacted by the sink)."""
    parts: list[str] = [result.reason or "failed"]
    if result.status is not None:
        parts.append(f"HTTP {result.status}")
    if result.detail:
        parts.append(result.detail)
    return ": ".join(parts)


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        dead_letters: DeadLetters,
        receivers: Mapping[str, Receiver],
        *,
        store: DeliveryStore,
        registry: CollectorRegistry,
        poll_interval: float = 1.0,
        batch_size: int = 200,
        max_in_flight: int = 10_000,
        dead_letter_refresh: float = 60.0,
    ) -> None:
        self._outbox = outbox
        self._dead_letters = dead_letters
        self._store = store
        self._batch_store = store if isinstance(store, BatchDeliveryStore) else None
        self._recording = (outbox if isinstance(outbox, RecordingOutbox)
                           and outbox.records_into(store) else None)
        self.metrics = DeliveryMetrics(registry, receivers)
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._max_in_flight = max_in_flight
        self._dead_letter_refresh = dead_letter_refresh
        self._dead_letters_counted_at: float | None = None
        self._receivers: dict[str, Receiver] = {}
        self._sent: dict[str, Counter] = {}
        self._latency: dict[str, Histogram] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._limits: dict[str, int] = {}
        self.set_receivers(receivers)
        # A receiver's lanes run on at most `concurrency` worker tasks, each taking lane after
        # lane; lanes waiting for a worker queue here, oldest first.
        self._workers: dict[str, int] = {}
        self._ready: dict[str, deque[Lane]] = {}
        self._cursor: int | None = None
        self._in_flight: set[str] = set()
        # Item ids taken from the outbox whose record the batch check found absent: their
        # per-item `already_delivered` read is skipped (once; a retry of the item asks again).
        self._unrecorded: set[str] = set()
        self._lanes: dict[Lane, deque[OutboxItem]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        # Worker tasks between the start of a send and its record: a drain waits for these
        # and cancels every other worker (queued, rate-limited or backing off: nothing sent).
        self._sending: set[asyncio.Task[None]] = set()
        self._draining = asyncio.Event()
        # Items of `_sending` tasks; lanes a worker runs; items given up but still in flight.
        self._sending_ids: set[str] = set()
        self._active: set[Lane] = set()
        self._released: set[str] = set()
        # Set (and replaced) by a drain or a release: wakes the workers that are backing off.
        self._interrupt = asyncio.Event()
        self._left = asyncio.Event()  # set when an item leaves `_in_flight`
        if isinstance(outbox, HandingOverOutbox):
            outbox.release_to(self.release)
        # Told after each item is done (delivered, dead-lettered or skipped): the intake gate.
        self.on_done: Callable[[], None] = lambda: None

    def set_receivers(self, receivers: Mapping[str, Receiver]) -> None:
        """Swap the receiver map at once (config reload). A send in flight finishes on the sink
        it started with; the next item of every lane uses the new one. A receiver that stays
        keeps its rate-limit bucket unless its limit changed."""
        for name, r in receivers.items():
            old = self._receivers.get(name)
            if old is None or old.rate_limit != r.rate_limit:
                self._buckets[name] = TokenBucket(r.rate_limit)
            self.metrics.add_receiver(name)
            # Metric children looked up once here instead of per notification.
            self._sent[name] = self.metrics.sent.labels(name)
            self._latency[name] = self.metrics.latency.labels(name)
        self._limits = {n: r.concurrency for n, r in receivers.items()}
        self._receivers = dict(receivers)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._poller is None:
            self._cursor = None
            self._draining.clear()
            self._poller = asyncio.create_task(self._poll(), name="delivery-poller")

    async def drain(self, grace: float) -> DrainReport:
        """Take nothing more from the outbox and start no new send; wait at most `grace`
        seconds for the sends in flight to finish and be recorded, then stop. What was taken
        but not sent stays pending in the outbox (the next start, or the next owner, sends it
        once); a send the grace period cuts off may go out again (at least once)."""
        started = time.monotonic()
        self._draining.set()
        self._wakeup.set()
        self._interrupt_workers()
        sending = set(self._sending)
        for task in self._tasks - sending:
            task.cancel()
        if sending:
            await asyncio.wait(sending, timeout=grace)
        cut_off = len(sending & self._sending)  # sent, not recorded
        await self.stop()
        return DrainReport(finished=len(sending) - cut_off, cut_off=cut_off,
                           seconds=time.monotonic() - started)

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    async def release(self, ids: Collection[str], grace: float) -> Released:
        """Give up the items `ids`: their outbox partition moves to another process.

        Those not being sent leave at once (queued, rate-limited or backing off: nothing sent;
        the new owner sends them). A send in flight finishes and is recorded, for at most
        `grace` seconds, so the new owner sees its record and does not send it again; one
        the grace period cuts off goes on here unrecorded (the new owner may send it too)."""
        mine = {i for i in ids if i in self._in_flight}
        if not mine:
            return Released(finished=0, cut_off=0)
        self._released |= mine
        sending = mine & self._sending_ids
        for lane, queue in list(self._lanes.items()):
            # A running lane's head is its worker's to let go (or to finish sending).
            head = 1 if lane in self._active else 0
            kept: list[OutboxItem] = []
            dropped: list[OutboxItem] = []
            for k, item in enumerate(queue):
                (kept if k < head or item.id not in mine else dropped).append(item)
            if not dropped:
                continue
            for item in dropped:
                self._leave(item)
            queue.clear()
            queue.extend(kept)  # in place: a worker holds this deque
            if not queue:
                del self._lanes[lane]
                with contextlib.suppress(ValueError):
                    self._ready.get(lane[0], deque()).remove(lane)
        self._interrupt_workers()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while mine & self._in_flight:
                    self._left.clear()
                    await self._left.wait()
        cut_off = len(mine & self._sending_ids)
        return Released(finished=len(sending) - cut_off, cut_off=cut_off)

    def _leave(self, item: OutboxItem) -> None:
        """`item` is done here: delivered, dead-lettered, skipped or given up."""
        self._in_flight.discard(item.id)
        self._released.discard(item.id)
        self._unrecorded.discard(item.id)
        self.metrics.done(item.receiver)
        self._left.set()
        self.on_done()

    def _interrupt_workers(self) -> None:
        self._interrupt.set()
        self._interrupt = asyncio.Event()

    async def stop(self) -> None:
        """Stop at once. Items in flight stay pending in the outbox and go out after restart."""
        tasks = [t for t in (self._poller, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Draining):
                await t
        self._poller = None
        self._sending.clear()
        self._sending_ids.clear()
        self._active.clear()
        self._released.clear()
        self._tasks.clear()
        self._workers.clear()
        self._ready.clear()
        self._lanes.clear()
        self._in_flight.clear()
        self._unrecorded.clear()
        self.metrics.clear_backlog()

    @property
    def backlog(self) -> int:
        """Items taken from the outbox and not done yet."""
        return len(self._in_flight)

    def wake(self) -> None:
        """New items were committed (or replayed): look at the outbox now, not at next poll."""
        self._wakeup.set()

    async def replay(self, id: str | None = None, receiver: str | None = None) -> int:
        """DeadLetters.replay, then wake up: for `dlq replay` and POST /api/v1/dlq."""
        count = await self._dead_letters.replay(id=id, receiver=receiver)
        self._dead_letters_counted_at = None  # recount at the next poll
        self.wake()
        return count

    async def wait_idle(self, interval: float = 0.02) -> None:
        """Until nothing is in flight and nothing is pending (tests, CLI one-shot runs)."""
        while True:
            if not self._in_flight and not await self._outbox.pending(1, self._cursor):
                return
            self.wake()
            await asyncio.sleep(interval)

    # --- intake ----------------------------------------------------------------------------

    async def _poll(self) -> None:
        while not self._draining.is_set():
            await self._count_dead_letters()
            room = self._max_in_flight - len(self._in_flight)
            items: list[OutboxItem] = []
            if room > 0:
                try:
                    items = await self._outbox.pending(min(room, self._batch_size), self._cursor)
                except Exception as exc:  # the backend is down: try again later
                    log.warning("outbox read failed: %s", type(exc).__name__)
            fresh = [item for item in items if item.id not in self._in_flight]
            if fresh and self._batch_store is not None:
                await self._check_records(self._batch_store, fresh)
            for item in fresh:
                if item.id not in self._in_flight:
                    self._in_flight.add(item.id)
                    self.metrics.taken(item.receiver)
                    self._enqueue(item)
            if items:
                self._cursor = max(self._cursor or 0, *(i.seq for i in items))
            if len(items) < self._batch_size or room <= len(items):
                self._wakeup.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancel that
                # lands as the wake-up fires, and `stop()` then waits for this task forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_interval):
                        await self._wakeup.wait()

    async def _count_dead_letters(self) -> None:
        """Set the dead-letter gauge from the store now and then: a dead letter counts it up at
        once, but a replay or removal by another process is only seen here."""
        now = time.monotonic()
        counted = self._dead_letters_counted_at
        if counted is not None and now - counted < self._dead_letter_refresh:
            return
        try:
            parked = await self._dead_letters.list()
        except Exception as exc:  # the backend is down: keep the last count, try again later
            log.warning("dead-letter count failed: %s", type(exc).__name__)
            return
        self._dead_letters_counted_at = now
        self.metrics.set_dead_letters(d.receiver for d in parked)

    async def _check_records(self, store: BatchDeliveryStore, items: list[OutboxItem]) -> None:
        """Which of `items` were never delivered, in one read (see `_unrecorded`)."""
        keys: dict[str, tuple[str, str]] = {}
        for item in items:
            receiver = self._receivers.get(item.notification.receiver)
            if receiver is not None:
                keys[item.id] = (item.notification.id, receiver.name)
        try:
            delivered = await store.delivered_among(keys.values())
        except Exception as exc:  # each item asks for itself when its turn comes
            log.warning("delivery record check failed: %s", type(exc).__name__)
            return
        self._unrecorded.update(i for i, key in keys.items() if key not in delivered)

    def _enqueue(self, item: OutboxItem) -> None:
        lane = item.lane
        queue = self._lanes.get(lane)
        if queue is not None:
            queue.append(item)  # its lane is running or waiting: it will get to it, in order
            return
        self._lanes[lane] = deque([item])
        name = lane[0]
        workers = self._workers.get(name, 0)
        if workers >= self._limits.get(name, 1):
            self._ready.setdefault(name, deque()).append(lane)
            return
        if self._draining.is_set():
            return  # stays pending in the outbox
        self._workers[name] = workers + 1
        task = asyncio.create_task(self._work(name, lane), name=f"delivery-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _work(self, name: str, lane: Lane) -> None:
        """One of a receiver's workers: runs `lane`, then every lane waiting for a worker."""
        task = asyncio.current_task()
        assert task is not None
        try:
            while True:
                self._active.add(lane)
                try:
                    await self._run_lane(lane, task)
                finally:
                    self._active.discard(lane)
                ready = self._ready.get(name)
                if not ready or self._draining.is_set():
                    return
                lane = ready.popleft()
        finally:
            self._workers[name] -= 1

    async def _run_lane(self, lane: Lane, task: asyncio.Task[None]) -> None:
        queue = self._lanes[lane]
        while queue:
            item = queue[0]
            try:
                await self._deliver_until_recorded(item, task)
            except GivenUp:
                pass  # its new owner sends it
            except Draining:
                return  # the item stays pending in the outbox
            queue.popleft()
            self._leave(item)
        # No await between the emptiness check and this: nothing can slip in unseen.
        del self._lanes[lane]

    # --- one item --------------------------------------------------------------------------

    async def _deliver_until_recorded(self, item: OutboxItem, task: asyncio.Task[None]) -> None:
        """`task`: the worker running this (a drain waits for it while it sends)."""
        while True:
            try:
                await self._deliver(item, task)
                return
            except (asyncio.CancelledError, Draining):
                raise
            except Exception as exc:  # backend trouble while recording: keep the lane's order
                log.warning("delivery bookkeeping failed for %s (%s), retrying",
                            item.id, type(exc).__name__)
                await self._sleep(self._poll_interval, item.id)
            finally:
                self._sending.discard(task)
                self._sending_ids.discard(item.id)

    def _check(self, item_id: str) -> None:
        """Before a send or retry: raise `Draining` or `GivenUp` when it must not happen."""
        if self._draining.is_set():
            raise Draining
        if item_id in self._released:
            raise GivenUp

    async def _sleep(self, seconds: float, item_id: str) -> None:
        """A backoff that a drain (or giving up `item_id`) ends at once, with `Draining` (or
        `GivenUp`): nothing is sent meanwhile."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            self._check(item_id)
            if asyncio.get_running_loop().time() >= deadline:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._interrupt.wait()

    async def _deliver(self, item: OutboxItem, task: asyncio.Task[None]) -> None:
        self._check(item.id)
        n = item.notification
        unrecorded = item.id in self._unrecorded
        self._unrecorded.discard(item.id)
        receiver = self._receivers.get(n.receiver)
        if receiver is None:
            log.warning("notification %s for unknown receiver %r: dead-lettered", n.id, n.receiver,
                        extra=_fields(n, n.receiver))
            await self._outbox.dead_letter(item, f"unknown_receiver: {n.receiver}")
            self.metrics.failed.labels(n.receiver, "unknown_receiver").inc()
            self.metrics.dead_lettered_one(n.receiver, "unknown_receiver")
            return
        name = receiver.name
        if await self._dead_letters.holds(name, n.group_key):
            await self._outbox.dead_letter(
                item, "held: an earlier notification of this incident is in the dead-letter store"
            )
            self.metrics.failed.labels(name, "held").inc()
            self.metrics.dead_lettered_one(name, "held")
            log.info("receiver %s: %s %s held behind a dead letter", name, n.kind.value, n.id,
                     extra=_fields(n, name))
            return
        if not unrecorded and await self._store.already_delivered(n.id, name):
            await self._outbox.mark_delivered([item.id])
            log.info("receiver %s: %s already delivered, not sent again", name, n.id,
                     extra=_fields(n, name))
            return

        bucket = self._buckets[name]
        started = time.monotonic()
        # The first attempt directly: a retry's closures are set up only when it failed.
        result = await self._attempt(item, receiver, bucket, task)
        if not result.ok:

            def on_retry(result: DeliveryResult, sleep: float) -> None:
                self.metrics.retries.labels(name).inc()
                log.info("receiver %s: %s %s failed (%s), retrying in %.1fs",
                         name, n.kind.value, n.id, describe(result), sleep,
                         extra=_fields(n, name))

            async def sleep(seconds: float) -> None:
                await self._sleep(seconds, item.id)

            result = await retry_after(
                result, started, lambda: self._attempt(item, receiver, bucket, task),
                receiver.retry, on_retry=on_retry, sleep=sleep)
        if result.ok:
            if self._recording is not None:
                await self._recording.mark_delivered_recorded(item.id, n.id, name)
            else:
                # Record first: if only the record lands, a redelivery is recognised and
                # skipped; once the outbox mark lands the item never comes back.
                await self._store.record(n.id, name)
                await self._outbox.mark_delivered([item.id])
            self._sent[name].inc()
            self._latency[name].observe(time.monotonic() - started)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("receiver %s: %s %s delivered", name, n.kind.value, n.id,
                          extra=_fields(n, name))
            return
        reason = describe(result)
        await self._outbox.dead_letter(item, reason)
        self.metrics.dead_lettered_one(name, result.reason or "server_error")
        log.warning("receiver %s: %s %s dead-lettered: %s", name, n.kind.value, n.id, reason,
                    extra=_fields(n, name))

    async def _attempt(self, item: OutboxItem, receiver: Receiver, bucket: TokenBucket,
                       task: asyncio.Task[None]) -> DeliveryResult:
        """One send of `item` by `task`, its worker; a failure is counted here."""
        if not bucket.idle():
            await bucket.acquire()
        self._check(item.id)
        # From here until recorded (or failed), a drain or a release waits for this task.
        self._sending.add(task)
        self._sending_ids.add(item.id)
        n = item.notification
        name = receiver.name
        group = sending_group.set(n.group_key)
        try:
            result = await receiver.sink.send(n)
        except Exception as exc:  # a sink bug; its text may hold a URL, so only the type
            log.error("receiver %s: sink raised %s", name, type(exc).__name__,
                      extra=_fields(n, name))
            result = DeliveryResult.failed("server_error", retryable=True,
                                           detail=type(exc).__name__)
        finally:
            sending_group.reset(group)
        if not result.ok:
            self._sending.discard(task)  # not delivered: nothing to record
            self._sending_ids.discard(item.id)
            if result.reason is not None:
                self.metrics.failed.labels(name, result.reason).inc()
                if result.reason == "rate_limited" and result.retry_after:
                    bucket.pause(result.retry_after)
        return result


def _fields(n: Notification, receiver: str) -> dict[str, str | None]:
    """The structured log fields of a notification's line (router.logs.FIELDS)."""
    return {"receiver": receiver, "notification_id": n.id, "incident": n.incident_id}
