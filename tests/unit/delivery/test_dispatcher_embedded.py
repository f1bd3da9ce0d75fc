"""The Dispatcher over the embedded (SQLite) outbox and records: the per-notification fast
paths (one read per batch for records, dead-letter lanes known in memory, record and delete in
one write, workers per receiver) keep the guarantees of the reference behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from router.backends.embedded.outbox import (
    SCHEMA,
    SqliteDeliveryStore,
    SqliteOutbox,
    insert_notifications,
)
from router.backends.embedded.sqlite import Database
from router.delivery.dispatcher import Dispatcher
from router.delivery.ratelimit import RateLimit
from router.delivery.result import DeliveryResult
from router.delivery.retry import RetryPolicy
from router.delivery.sink import Receiver
from router.model import Notification, NotificationKind
from tests.unit.delivery.conftest import FAST_RETRY, notification

BAD = DeliveryResult.failed("client_error", retryable=False, status=400)
FLAKY = DeliveryResult.failed("server_error", retryable=True, status=503)


class FakeSink:
    """Answers from a script (per notification id), else delivers; records what it saw."""

    def __init__(self, delay: float = 0.0) -> None:
        self.sent: list[str] = []
        self.script: dict[str, list[DeliveryResult]] = {}
        self.delay = delay
        self.running = 0
        self.most_at_once = 0

    async def send(self, n: Notification) -> DeliveryResult:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            answers = self.script.get(n.id)
            result = answers.pop(0) if answers else DeliveryResult.delivered(200)
            if result.ok:
                self.sent.append(n.id)
            return result
        finally:
            self.running -= 1


class Embedded:
    def __init__(self, db: Database, path: Path) -> None:
        self.db = db
        self.db_path = path
        self.outbox = SqliteOutbox(db)
        self.records = SqliteDeliveryStore(db)
        self.sink = FakeSink()
        self.dispatchers: list[Dispatcher] = []
        self.registry = CollectorRegistry()

    async def add(self, *ns: Notification) -> None:
        await self.db.transaction(lambda c: insert_notifications(c, ns))
        for d in self.dispatchers:
            d.wake()

    async def start(self, concurrency: int = 8) -> Dispatcher:
        receiver = Receiver(name="r", sink=self.sink, retry=RetryPolicy(**FAST_RETRY),
                            rate_limit=RateLimit(), concurrency=concurrency)
        d = Dispatcher(self.outbox, self.outbox, {"r": receiver}, store=self.records,
                       registry=self.registry, poll_interval=0.05)
        await d.start()
        self.dispatchers.append(d)
        return d


@pytest.fixture
async def emb(tmp_path: Path) -> AsyncIterator[Embedded]:
    db = Database(tmp_path / "router.db", SCHEMA, synchronous="NORMAL")
    await db.open()
    e = Embedded(db, tmp_path / "router.db")
    yield e
    for d in e.dispatchers:
        await d.stop()
    await db.close()


async def test_delivers_records_and_empties_the_outbox_in_lane_order(emb: Embedded) -> None:
    kinds = (NotificationKind.TRIGGER, NotificationKind.UPDATE, NotificationKind.RESOLVE)
    ns = [notification(k, group=f"g{g}", n=g) for g in range(20) for k in kinds]
    emb.sink.script[ns[0].id] = [FLAKY, FLAKY]  # the fast path hands over to the retry loop
    d = await emb.start()
    await emb.add(*ns)
    await d.wait_idle()
    assert sorted(emb.sink.sent) == sorted(n.id for n in ns)
    for g in range(20):
        lane = [i for i in emb.sink.sent if i in {n.id for n in ns[3 * g:3 * g + 3]}]
        assert lane == [n.id for n in ns[3 * g:3 * g + 3]]
    assert await emb.outbox.count_pending() == 0
    assert await emb.records.delivered_among((n.id, "r") for n in ns) == {(n.id, "r") for n in ns}
    assert emb.registry.get_sample_value("incident_router_notification_retries_total",
                                         {"receiver": "r"}) == 2


async def test_an_item_recorded_before_a_crash_is_not_sent_again(emb: Embedded) -> None:
    done, fresh = notification(n=1, group="a"), notification(n=2, group="b")
    await emb.records.record(done.id, "r")  # delivered, then the outbox delete was lost
    d = await emb.start()
    await emb.add(done, fresh)
    await d.wait_idle()
    assert emb.sink.sent == [fresh.id]
    assert await emb.outbox.count_pending() == 0


async def test_a_dead_letter_holds_its_lane_until_replayed_by_another_process(
    emb: Embedded,
) -> None:
    t = notification(NotificationKind.TRIGGER, group="g1")
    u = notification(NotificationKind.UPDATE, group="g1")
    other = notification(NotificationKind.TRIGGER, group="g2")
    emb.sink.script[t.id] = [BAD]
    d = await emb.start()
    await emb.add(t)
    await d.wait_idle()
    await emb.add(u, other)
    await d.wait_idle()
    assert emb.sink.sent == [other.id]
    dead = await emb.outbox.list()
    assert [x.id for x in dead] == [t.id, u.id]
    assert dead[1].reason.startswith("held")
    assert await emb.outbox.holds("r", "g1")

    # `incident-router dlq replay` runs in its own process, with its own connection.
    cli = Database(emb.db_path, SCHEMA)
    await cli.open()
    assert await SqliteOutbox(cli).replay(id=t.id) == 2
    await cli.close()
    d.wake()
    await d.wait_idle()
    assert emb.sink.sent == [other.id, t.id, u.id]
    assert not await emb.outbox.holds("r", "g1")
    assert await emb.outbox.list() == []

    # The lane can be held again later.
    later = notification(NotificationKind.UPDATE, group="g1", n=5)
    after = notification(NotificationKind.RESOLVE, group="g1", n=5)
    emb.sink.script[later.id] = [BAD]
    await emb.add(later)
    await d.wait_idle()
    await emb.add(after)
    await d.wait_idle()
    assert [x.id for x in await emb.outbox.list()] == [later.id, after.id]


async def test_dead_letters_from_before_a_restart_hold_their_lane(
    emb: Embedded, tmp_path: Path
) -> None:
    t = notification(NotificationKind.TRIGGER, group="g1")
    await emb.add(t)
    before = Database(tmp_path / "router.db", SCHEMA)  # the previous run's connection
    await before.open()
    (item,) = await SqliteOutbox(before).pending(10)
    await SqliteOutbox(before).dead_letter(item, "client_error: HTTP 400")
    await before.close()
    u = notification(NotificationKind.UPDATE, group="g1")
    d = await emb.start()
    await emb.add(u)
    await d.wait_idle()
    assert emb.sink.sent == []
    assert [x.id for x in await emb.outbox.list()] == [t.id, u.id]


async def test_a_receiver_runs_at_most_concurrency_lanes_at_once(emb: Embedded) -> None:
    emb.sink.delay = 0.01
    ns = [notification(group=f"g{i}", n=i) for i in range(40)]
    d = await emb.start(concurrency=3)
    await emb.add(*ns)
    await d.wait_idle()
    assert emb.sink.most_at_once == 3
    # Lanes waiting for a worker start in the order they appeared.
    assert emb.sink.sent[:3] == [n.id for n in ns[:3]]
    assert sorted(emb.sink.sent) == sorted(n.id for n in ns)


async def test_outbox_and_dead_letters_may_be_separate_objects_on_one_database(
    emb: Embedded,
) -> None:
    t = notification(NotificationKind.TRIGGER, group="g1")
    u = notification(NotificationKind.UPDATE, group="g1")
    emb.sink.script[t.id] = [BAD]
    receiver = Receiver(name="r", sink=emb.sink, retry=RetryPolicy(**FAST_RETRY),
                        rate_limit=RateLimit())
    d = Dispatcher(SqliteOutbox(emb.db), SqliteOutbox(emb.db), {"r": receiver},
                   store=emb.records, registry=CollectorRegistry(), poll_interval=0.05)
    await d.start()
    emb.dispatchers.append(d)
    await emb.add(t)
    await d.wait_idle()
    await emb.add(u)
    await d.wait_idle()
    assert emb.sink.sent == []
    assert [x.id for x in await emb.outbox.list()] == [t.id, u.id]
