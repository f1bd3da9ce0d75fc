"""Dispatcher.drain (SIGTERM): finish and record the sends in flight, start nothing new.

The receiver here holds every request until the test lets it answer, so "in flight" is a
state the test controls, not a timing. The real-process version (both backends, SIGTERM
mid-stream) is tests/contract/test_drain.py.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from router.model import NotificationKind
from tests.unit.delivery.conftest import FAST_RETRY, Build, Serve, notification, receiver_config


class HeldReceiver:
    """A webhook endpoint that answers `status` to each request once `answer` is set."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.ids: list[str] = []
        self.arrived = asyncio.Event()
        self.answer = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.Response:
        self.ids.append(request.headers["webhook-id"])
        self.arrived.set()
        await self.answer.wait()
        return web.Response(status=self.status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        return app


async def test_drain_finishes_and_records_the_send_in_flight_and_starts_no_other(
        serve: Serve, harness: Build) -> None:
    held, failing = HeldReceiver(), HeldReceiver(status=500)
    failing.answer.set()  # answers 500 at once: its item is backing off when the drain starts
    h = await harness(
        receiver_config(type="webhook", name="held", url=f"{await serve(held.app())}/hook",
                        retry=FAST_RETRY),
        receiver_config(type="webhook", name="failing",
                        url=f"{await serve(failing.app())}/hook",
                        retry={**FAST_RETRY, "initial_backoff_seconds": 60,
                               "max_backoff_seconds": 60, "max_elapsed_seconds": 600}),
    )
    first = notification(receiver="held", group="g1")
    second = notification(NotificationKind.RESOLVE, receiver="held", group="g1")
    doomed = notification(receiver="failing", group="g2")
    h.add(first, second, doomed)
    async with asyncio.timeout(10):
        await held.arrived.wait()
        while not h.registry.get_sample_value(  # noqa: ASYNC110 (told before its backoff)
                "incident_router_notification_retries_total", {"receiver": "failing"}):
            await asyncio.sleep(0.01)

    drain = asyncio.create_task(h.dispatcher.drain(grace=30))
    await asyncio.sleep(0)
    assert not drain.done(), "the drain did not wait for the send in flight"
    held.answer.set()
    report = await drain

    assert (report.finished, report.cut_off) == (1, 0)
    assert held.ids == [first.id], "a send was started after the drain began"
    assert failing.ids == [doomed.id], "a retry was made after the drain began"
    assert await h.store.already_delivered(first.id, "held")
    assert h.outbox.delivered == [first.id]
    # Not sent: still in the outbox, for the next start (or the partition's next owner).
    assert [i.id for i in await h.outbox.pending(10)] == [second.id, doomed.id]
    assert await h.outbox.list() == []  # nothing dead-lettered by the drain


async def test_grace_period_cuts_off_a_send_that_does_not_finish(
        serve: Serve, harness: Build) -> None:
    held = HeldReceiver()  # never answers
    h = await harness(receiver_config(type="webhook", name="held",
                                      url=f"{await serve(held.app())}/hook", retry=FAST_RETRY))
    n = notification(receiver="held")
    h.add(n)
    async with asyncio.timeout(10):
        await held.arrived.wait()

    report = await h.dispatcher.drain(grace=0.05)

    assert (report.finished, report.cut_off) == (0, 1)
    assert not await h.store.already_delivered(n.id, "held")
    assert [i.id for i in await h.outbox.pending(10)] == [n.id]  # goes out again after restart
    held.answer.set()
