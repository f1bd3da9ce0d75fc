"""Dispatcher.release (a Kafka rebalance moves outbox items away): finish and record the sends
in flight, drop the rest, start nothing more of them.

The receiver holds every request until the test lets it answer, so "in flight" is a state the
test controls. The real-process version (replicas joining, leaving, killed and restarted) is
tests/kafka/test_kafka_rebalance.py.
"""

from __future__ import annotations

import asyncio

from router.delivery.outbox import MemoryOutbox, Release
from router.model import Notification, NotificationKind
from tests.unit.delivery.conftest import (
    FAST_RETRY,
    Build,
    Harness,
    Serve,
    notification,
    receiver_config,
)
from tests.unit.delivery.test_drain import HeldReceiver


class HandingOver(MemoryOutbox):
    """A `HandingOverOutbox`: keeps the release the Dispatcher registers, as KafkaOutbox does."""

    release: Release | None = None

    def release_to(self, release: Release) -> None:
        self.release = release


async def test_release_finishes_the_send_in_flight_and_drops_the_rest(
        serve: Serve, harness: Build) -> None:
    held, failing = HeldReceiver(), HeldReceiver(status=500)
    failing.answer.set()  # answers 500 at once: its item is backing off when released
    outbox = HandingOver()
    h = await harness(
        # One send at a time: the second lane waits for the worker.
        receiver_config(type="webhook", name="held", url=f"{await serve(held.app())}/hook",
                        retry=FAST_RETRY, concurrency=1),
        receiver_config(type="webhook", name="failing",
                        url=f"{await serve(failing.app())}/hook",
                        retry={**FAST_RETRY, "initial_backoff_seconds": 60,
                               "max_backoff_seconds": 60, "max_elapsed_seconds": 600}),
        outbox=outbox,
    )
    assert outbox.release is not None, "the Dispatcher did not register its release"
    sending = notification(receiver="held", group="g1")
    behind = notification(NotificationKind.RESOLVE, receiver="held", group="g1")
    waiting = notification(receiver="held", group="g2")
    backing_off = notification(receiver="failing", group="g3")
    h.add(sending, behind, waiting, backing_off)
    async with asyncio.timeout(10):
        await held.arrived.wait()
        while not h.registry.get_sample_value(  # noqa: ASYNC110 (told before its backoff)
                "incident_router_notification_retries_total", {"receiver": "failing"}):
            await asyncio.sleep(0.01)
    assert h.dispatcher.backlog == 4

    released = asyncio.create_task(outbox.release(
        [sending.id, behind.id, waiting.id, backing_off.id], 30))
    async with asyncio.timeout(10):  # the backing-off worker wakes up and lets its item go
        while h.dispatcher.backlog > 1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert not released.done(), "the release did not wait for the send in flight"
    held.answer.set()
    report = await released

    assert (report.finished, report.cut_off) == (1, 0)
    assert await h.store.already_delivered(sending.id, "held"), "sent but not recorded"
    assert h.dispatcher.backlog == 0
    h.dispatcher.wake()
    await asyncio.sleep(0.1)  # two poll intervals: anything still to send would have started
    assert held.ids == [sending.id], "a send was started after the release"
    assert failing.ids == [backing_off.id], "a retry was made after the release"
    assert await h.outbox.list() == []  # nothing dead-lettered: the new owner sends them


async def one_send_held(serve: Serve, harness: Build
                        ) -> tuple[Harness, HeldReceiver, Notification]:
    """A dispatcher sending one notification that the receiver holds unanswered."""
    held = HeldReceiver()
    h = await harness(receiver_config(type="webhook", name="held",
                                      url=f"{await serve(held.app())}/hook", retry=FAST_RETRY))
    n = notification(receiver="held", group="g1")
    h.add(n)
    async with asyncio.timeout(10):
        await held.arrived.wait()
    return h, held, n


async def test_release_leaves_out_items_it_does_not_hold(serve: Serve, harness: Build) -> None:
    h, held, kept = await one_send_held(serve, harness)
    other = notification(receiver="held", group="g2")

    report = await h.dispatcher.release([other.id], grace=30)  # not taken: nothing to do

    assert (report.finished, report.cut_off) == (0, 0)
    held.answer.set()
    await h.dispatcher.wait_idle()
    assert await h.store.already_delivered(kept.id, "held")


async def test_grace_period_cuts_off_a_send_that_does_not_finish(
        serve: Serve, harness: Build) -> None:
    h, held, n = await one_send_held(serve, harness)

    report = await h.dispatcher.release([n.id], grace=0.05)

    assert (report.finished, report.cut_off) == (0, 1)
    assert not await h.store.already_delivered(n.id, "held")  # the new owner may send it too
    held.answer.set()
    async with asyncio.timeout(10):
        while h.dispatcher.backlog:  # noqa: ASYNC110 (the send goes on, and is recorded)
            await asyncio.sleep(0.01)
    assert await h.store.already_delivered(n.id, "held")
    assert held.ids == [n.id]
