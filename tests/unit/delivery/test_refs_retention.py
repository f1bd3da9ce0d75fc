"""Embedded retention prunes delivery refs (Slack thread ts, Statuspage ids, ...) with the
groups they belong to: refs of resolved groups go once those are older than the retention
age, refs of anything still open stay, and a later resolve still threads under the original
message. Real parts: the embedded backend, the Dispatcher and the Slack sink against the fake
Slack Web API, on an injected clock."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession
from prometheus_client import CollectorRegistry

from router.backends.embedded.backend import EmbeddedBackend
from router.backends.embedded.outbox import insert_notifications
from router.backends.embedded.retention import RetentionPolicy
from router.config import IncidentsConfig
from router.delivery.dispatcher import Dispatcher
from router.delivery.ratelimit import RateLimit
from router.delivery.receivers.slack import SlackConfig, build
from router.delivery.records import sending_group
from router.delivery.retry import RetryPolicy
from router.delivery.sink import Receiver, SinkContext
from router.engine.state import EngineContext
from router.metrics import EngineMetrics
from router.model import Alert, AlertEvent, Notification, NotificationKind, Severity, Status
from router.policy import SeverityPolicies, SeverityPolicy
from tests.fakes.slack import FakeSlack
from tests.unit.delivery.conftest import FAST_RETRY, Serve

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TOKEN = "xoxb-1111-2222-SECRETTOKEN"
GROUPS = 20
GROUP_INTERVAL = timedelta(minutes=1)
POLICIES = SeverityPolicies(SEV4=SeverityPolicy(group_wait=timedelta(0),
                                                group_interval=GROUP_INTERVAL))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def alert(name: str, status: Status, at: datetime) -> AlertEvent:
    return AlertEvent(alert=Alert(
        source="generic", fingerprint=name, status=status, name=f"Alert {name}",
        starts_at=T0, ends_at=at if status is Status.RESOLVED else None, received_at=at,
        severity=Severity.SEV4, group_key=f"g-{name}",
    ))


@dataclass
class Setup:
    backend: EmbeddedBackend
    dispatcher: Dispatcher
    slack: FakeSlack
    clock: Clock

    async def run(self, *events: AlertEvent) -> None:
        """Decide the events and deliver every notification they made."""
        await self.backend.log.append(list(events))
        await self.backend.engine.drained()
        self.clock.now += 2 * GROUP_INTERVAL  # past each group's wait for its next message
        await self.backend.engine.drained()
        self.dispatcher.wake()
        await self.dispatcher.wait_idle()

    async def refs(self) -> int:
        row = await self.backend.db.read(
            lambda c: c.execute("SELECT count(*) FROM delivery_refs").fetchone())
        return int(row[0])


@pytest.fixture
async def setup(tmp_path: Path, serve: Serve, session: ClientSession
                ) -> AsyncIterator[Setup]:
    clock = Clock()
    registry = CollectorRegistry()
    backend = EmbeddedBackend(
        tmp_path / "router.db",
        EngineContext(default_receivers=("s",), incidents=IncidentsConfig(), policies=POLICIES),
        EngineMetrics(registry), synchronous="NORMAL", registry=registry, clock=clock,
        retention=RetentionPolicy(closed_incidents=30 * DAY, delivery_records=7 * DAY))
    slack = FakeSlack(TOKEN)
    url = await serve(slack.app())
    config = SlackConfig.model_validate(
        {"name": "s", "bot_token": TOKEN, "channel": "C123", "api_url": f"{url}/api"})
    sink = build(config, SinkContext(session=session, store=backend.records))
    receiver = Receiver(name="s", sink=sink, retry=RetryPolicy(**FAST_RETRY),
                        rate_limit=RateLimit())
    dispatcher = Dispatcher(backend.outbox, backend.outbox, {"s": receiver},
                            store=backend.records, registry=registry, poll_interval=0.05)
    await backend.start()
    await dispatcher.start()
    yield Setup(backend, dispatcher, slack, clock)
    await dispatcher.stop()
    await backend.stop()


async def test_refs_of_resolved_groups_go_after_the_age_and_open_ones_stay(
        setup: Setup) -> None:
    s = setup
    await s.run(alert("open", Status.FIRING, T0))
    open_refs = await s.refs()
    assert open_refs > 0
    header = s.slack.messages[0]
    names = [f"r{i}" for i in range(GROUPS)]
    await s.run(*[alert(n, Status.FIRING, T0) for n in names])
    await s.run(*[alert(n, Status.RESOLVED, T0 + DAY) for n in names])
    before = await s.refs()
    assert before > open_refs + GROUPS  # a thread, a post and a reply per group

    s.clock.now = T0 + 20 * DAY  # resolved 19 days ago: within the age, all stay
    await s.backend.engine.drained()  # the engine forgets the resolved groups on its timers
    await s.backend.retention.prune()
    assert await s.refs() == before
    s.clock.now = T0 + 32 * DAY
    await s.backend.engine.drained()

    report = await s.backend.retention.prune()

    assert await s.refs() == open_refs
    assert report.deleted["delivery_refs"] > GROUPS
    # The still-open group's later resolve is a reply in the thread of its first message.
    await s.run(alert("open", Status.RESOLVED, s.clock.now))
    resolve = s.slack.messages[-1]
    assert resolve["thread_ts"] == header["ts"] and resolve["reply_broadcast"] is True
    # ...and once that group is past the age too, nothing is left.
    s.clock.now += 31 * DAY
    await s.backend.engine.drained()
    await s.backend.retention.prune()
    assert await s.refs() == 0


async def test_refs_of_an_older_database_are_kept_for_the_age_from_the_upgrade(
        tmp_path: Path) -> None:
    path = tmp_path / "router.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE delivery_refs (receiver TEXT NOT NULL, key TEXT NOT NULL, "
                 "ref BLOB NOT NULL, PRIMARY KEY (receiver, key))")
    conn.execute("INSERT INTO delivery_refs VALUES ('s', 'slack-thread:d1', ?)",
                 (b'{"channel":"C123","ts":"1.2"}',))
    conn.commit()
    conn.close()
    clock = Clock()
    backend = EmbeddedBackend(path, EngineContext(), EngineMetrics(CollectorRegistry()),
                              synchronous="NORMAL", clock=clock,
                              retention=RetentionPolicy(closed_incidents=30 * DAY))
    await backend.start()
    try:
        assert await backend.records.get_ref("s", "slack-thread:d1") == {
            "channel": "C123", "ts": "1.2"}
        clock.now = T0 + 29 * DAY
        assert (await backend.retention.prune()).deleted["delivery_refs"] == 0
        clock.now = T0 + 31 * DAY
        assert (await backend.retention.prune()).deleted["delivery_refs"] == 1
        assert await backend.records.get_ref("s", "slack-thread:d1") is None
    finally:
        await backend.stop()


async def test_a_ref_stays_while_a_notification_of_its_group_waits(tmp_path: Path) -> None:
    clock = Clock()
    backend = EmbeddedBackend(tmp_path / "router.db", EngineContext(),
                              EngineMetrics(CollectorRegistry()), synchronous="NORMAL",
                              clock=clock, retention=RetentionPolicy(
                                  closed_incidents=30 * DAY, dead_letters=60 * DAY))
    await backend.start()
    try:
        for group in ("g-queued", "g-dead", "g-done"):
            token = sending_group.set(group)
            await backend.records.put_ref("s", f"slack-thread:{group}", {"ts": group})
            sending_group.reset(token)
        await backend.db.transaction(lambda c: insert_notifications(c, [
            Notification(id=f"n-{g}", receiver="s", kind=NotificationKind.UPDATE, group_key=g,
                         dedup_key=g, severity=Severity.SEV3, title=g, created_at=T0)
            for g in ("g-queued", "g-dead")]))
        queued, dead = await backend.outbox.pending(10)
        await backend.outbox.dead_letter(dead, "http_500")
        clock.now = T0 + 31 * DAY

        assert (await backend.retention.prune()).deleted["delivery_refs"] == 1

        assert await backend.records.get_ref("s", "slack-thread:g-done") is None
        await backend.outbox.mark_delivered([queued.id])
        assert (await backend.retention.prune()).deleted["delivery_refs"] == 1
        assert await backend.records.get_ref("s", "slack-thread:g-dead") == {"ts": "g-dead"}
        clock.now = T0 + 61 * DAY  # the dead letter's age: nobody will replay it now
        await backend.retention.prune()
        assert await backend.records.get_ref("s", "slack-thread:g-dead") is None
    finally:
        await backend.stop()
