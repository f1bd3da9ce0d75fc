"""Receivers follow a config reload; dead letters and the backlog are visible in metrics."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from router.api.keys import BACKEND, DISPATCHER
from router.delivery.dispatcher import Dispatcher
from router.delivery.outbox import MemoryOutbox
from router.delivery.ratelimit import RateLimit
from router.delivery.records import MemoryDeliveryStore
from router.delivery.result import DeliveryResult
from router.delivery.retry import RetryPolicy
from router.delivery.sink import Receiver
from router.model import Notification
from tests.conftest import RouterClient
from tests.fakes.webhook import PATH, FakeWebhookConsumer
from tests.unit.delivery.conftest import Build, Serve, notification, receiver_config

SECRET = "whsec_" + base64.b64encode(b"r" * 32).decode()
ONE_TRY = {"max_attempts": 1}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


class Gate:
    """A sink that holds each send until released, and remembers what it was given."""

    def __init__(self) -> None:
        self.got: list[str] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, n: Notification) -> DeliveryResult:
        self.got.append(n.id)
        self.entered.set()
        await self.release.wait()
        return DeliveryResult.delivered(200)


def receiver(name: str, sink: Gate) -> Receiver:
    return Receiver(name=name, sink=sink, retry=RetryPolicy(max_attempts=1),
                    rate_limit=RateLimit(per_second=1000, burst=1000))


async def test_reload_builds_a_receiver_added_to_the_config_and_delivers_to_it(
        router_client: RouterClient, serve: Serve, tmp_path: Path) -> None:
    fake = FakeWebhookConsumer(SECRET)
    hook_url = await serve(fake.app()) + PATH
    rules = tmp_path / "rules"
    rules.mkdir()
    client = await router_client({"rules_dir": str(rules), "severities": {
        s: {"group_wait": "0s"} for s in ("SEV1", "SEV2", "SEV3", "SEV4")}})

    # The new receiver and a rule that routes to it arrive together, by reload.
    config_path = tmp_path / "router.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["receivers"].append({"name": "hook", "type": "webhook", "url": hook_url,
                                "secrets": [SECRET]})
    config_path.write_text(yaml.safe_dump(config))
    (rules / "10-thing.yaml").write_text(yaml.safe_dump({"rules": [{
        "name": "thing-to-hook", "match": {"labels": ['alertname="Thing"']},
        "set": {"severity": "SEV2", "receivers": ["hook"]}}]}))
    resp = await client.post("/-/reload")
    assert resp.status == 200, await resp.text()

    resp = await client.post("/webhooks/generic", json={"name": "Thing", "labels": {"x": "1"}})
    assert resp.status == 200, await resp.text()
    await client.server.app[BACKEND].engine.drained()
    dispatcher = client.server.app[DISPATCHER]
    await dispatcher.wait_idle()
    assert [e["type"] for e in fake.events] == ["alert.firing"]
    assert await dispatcher.replay() == 0  # nothing was dead-lettered
    metrics = await (await client.get("/metrics")).text()
    assert 'incident_router_notifications_sent_total{receiver="hook"} 1.0' in metrics


async def test_a_send_in_flight_finishes_on_the_old_sink_the_next_uses_the_new() -> None:
    outbox = MemoryOutbox()
    old, new = Gate(), Gate()
    new.release.set()
    dispatcher = Dispatcher(outbox, outbox, {"r": receiver("r", old)},
                            store=MemoryDeliveryStore(), registry=CollectorRegistry(),
                            poll_interval=0.05)
    await dispatcher.start()
    try:
        first, second = notification(n=0), notification(n=1)
        outbox.add(first)
        dispatcher.wake()
        await old.entered.wait()
        dispatcher.set_receivers({"r": receiver("r", new)})
        outbox.add(second)
        dispatcher.wake()
        old.release.set()
        await dispatcher.wait_idle()
    finally:
        await dispatcher.stop()
    assert (old.got, new.got) == ([first.id], [second.id])
    assert outbox.delivered == [first.id, second.id]


async def test_an_unknown_receiver_dead_letter_is_counted(harness: Build) -> None:
    h = await harness(receiver_config(type="log", name="log"))
    h.add(notification(receiver="nobody"))
    await h.dispatcher.wait_idle()
    assert value(h.registry, "incident_router_notifications_dead_lettered_total",
                 receiver="nobody", reason="unknown_receiver") == 1
    assert value(h.registry, "incident_router_dead_letters", receiver="nobody") == 1
    assert value(h.registry, "incident_router_dead_letters", receiver="log") == 0


async def test_the_dead_letter_gauge_follows_dead_letters_and_replays(
        serve: Serve, harness: Build) -> None:
    fake = FakeWebhookConsumer(SECRET)
    url = await serve(fake.app()) + PATH
    h = await harness(receiver_config(type="webhook", name="hook", url=url, secrets=[SECRET],
                                      retry=ONE_TRY))
    fake.fail(400, times=2)
    h.add(notification(receiver="hook", group="a"), notification(receiver="hook", group="b"))
    await h.dispatcher.wait_idle()
    assert value(h.registry, "incident_router_dead_letters", receiver="hook") == 2
    assert value(h.registry, "incident_router_notifications_dead_lettered_total",
                 receiver="hook", reason="client_error") == 2

    assert await h.dispatcher.replay(receiver="hook") == 2
    await h.dispatcher.wait_idle()
    assert len(fake.events) == 2
    assert value(h.registry, "incident_router_dead_letters", receiver="hook") == 0


async def test_the_backlog_gauge_counts_what_is_taken_and_not_done() -> None:
    outbox = MemoryOutbox()
    gate = Gate()
    registry = CollectorRegistry()
    dispatcher = Dispatcher(outbox, outbox, {"r": receiver("r", gate)},
                            store=MemoryDeliveryStore(), registry=registry, poll_interval=0.05)
    assert value(registry, "incident_router_outbox_backlog", receiver="r") == 0
    await dispatcher.start()
    try:
        outbox.add(notification(n=0))
        outbox.add(notification(n=1))  # same lane: waits behind the first
        dispatcher.wake()
        await gate.entered.wait()
        assert value(registry, "incident_router_outbox_backlog", receiver="r") == 2
        gate.release.set()
        await dispatcher.wait_idle()
        assert value(registry, "incident_router_outbox_backlog", receiver="r") == 0
    finally:
        await dispatcher.stop()
