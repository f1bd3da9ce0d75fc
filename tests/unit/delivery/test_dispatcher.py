"""The Dispatcher end to end against fake vendors: outages, rate limits, DLQ, order, bursts."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from router.delivery.outbox import MemoryOutbox
from router.delivery.receivers.slack import build as build_slack
from router.delivery.records import MemoryDeliveryStore
from router.delivery.result import FAILURE_REASONS
from router.delivery.sink import SinkContext
from router.model import NotificationKind, Severity
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.fakes.webhook import PATH as HOOK_PATH
from tests.fakes.webhook import FakeWebhookConsumer
from tests.unit.delivery.conftest import (
    FAST_RETRY,
    Build,
    Serve,
    notification,
    receiver_config,
)

PD_KEY = "R0UTINGKEY0123456789abcdef012345"
TOKEN = "xoxb-1111-2222-SECRETTOKEN"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
LIFECYCLE = (NotificationKind.TRIGGER, NotificationKind.UPDATE, NotificationKind.ACKNOWLEDGE,
             NotificationKind.RESOLVE)


async def eventually(cond: Callable[[], bool], limit: float = 30.0) -> None:
    """Poll a fake's state (the fakes have no events to wait on); fail after `limit` s."""
    async with asyncio.timeout(limit):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} missing"
    return value


async def test_outage_then_recovery_delivers_everything_in_order_without_duplicates(
    serve: Serve, harness: Build
) -> None:
    pd = FakePagerDuty(PD_KEY)
    pd_url = await serve(pd.app())
    hook = FakeWebhookConsumer(WHSEC)
    hook_url = await serve(hook.app())
    h = await harness(
        receiver_config(type="pagerduty", name="pd", routing_key=PD_KEY,
                        url=f"{pd_url}/v2/enqueue", retry=FAST_RETRY,
                        rate_limit={"per_second": 0}),
        receiver_config(type="webhook", name="hook", url=f"{hook_url}{HOOK_PATH}",
                        secrets=[WHSEC], retry=FAST_RETRY),
    )
    pd.fail_for(60.0, status=500)  # "down for two minutes", ended below by heal()
    groups = [f"g{i}" for i in range(5)]
    for kind in LIFECYCLE:
        for g in groups:
            h.add(notification(kind, receiver="pd", group=g),
                  notification(kind, receiver="hook", group=g))

    # The healthy receiver is not held up by the failing one.
    await eventually(lambda: len(hook.events) == 20)
    assert pd.accepted == []
    await eventually(lambda: len(pd.requests) > 20)  # it kept retrying meanwhile
    pd.heal()
    await h.dispatcher.wait_idle()

    assert len(pd.accepted) == 20
    for g in groups:
        actions = [e["event_action"] for e in pd.accepted if e["dedup_key"] == f"inc:{g}"]
        assert actions == ["trigger", "trigger", "acknowledge", "resolve"]
    assert await h.outbox.list() == []
    assert len(h.outbox.delivered) == 40
    assert sample(h.registry, "incident_router_notifications_sent_total", receiver="pd") == 20
    assert sample(h.registry, "incident_router_notification_retries_total", receiver="pd") > 0
    assert sample(h.registry, "incident_router_notification_failures_total", receiver="pd",
                  reason="server_error") > 0
    assert sample(h.registry, "incident_router_delivery_latency_seconds_count",
                  receiver="pd") == 20


async def test_429_with_retry_after_3_is_waited_out(serve: Serve, harness: Build) -> None:
    slack = FakeSlack(TOKEN)
    url = await serve(slack.app())
    h = await harness(receiver_config(type="slack", name="s", bot_token=TOKEN, channel="C1",
                                      api_url=f"{url}/api", retry=FAST_RETRY))
    slack.fail(429, headers={"Retry-After": "3"}, body='{"ok":false,"error":"ratelimited"}')
    h.add(notification(receiver="s"))
    await h.dispatcher.wait_idle()
    first, second = slack.requests
    assert second.at - first.at >= 2.9  # Retry-After beat the 10 ms backoff
    assert len(slack.messages) == 1
    assert await h.outbox.list() == []
    assert sample(h.registry, "incident_router_notification_failures_total", receiver="s",
                  reason="rate_limited") == 1


async def test_400_is_dead_lettered_at_once_and_replay_delivers_it(
    serve: Serve, harness: Build
) -> None:
    pd = FakePagerDuty(PD_KEY)
    url = await serve(pd.app())
    h = await harness(receiver_config(type="pagerduty", name="pd", routing_key=PD_KEY,
                                      url=f"{url}/v2/enqueue", retry=FAST_RETRY))
    pd.fail(400, body='{"status":"invalid event","message":"Event object is invalid"}')
    h.add(notification(receiver="pd", group="broken"))
    await h.dispatcher.wait_idle()
    assert len(pd.requests) == 1  # no retry for a 400
    (dead,) = await h.outbox.list()
    assert dead.reason.startswith("client_error: HTTP 400: ")
    assert "Event object is invalid" in dead.reason

    # Later messages of that incident park behind it; other incidents flow.
    h.add(notification(NotificationKind.RESOLVE, receiver="pd", group="broken"),
          notification(receiver="pd", group="fine"))
    await h.dispatcher.wait_idle()
    assert [e["dedup_key"] for e in pd.accepted] == ["inc:fine"]
    parked = await h.outbox.list("pd")
    assert [(d.notification.kind, d.reason.split(":")[0]) for d in parked] == [
        (NotificationKind.TRIGGER, "client_error"), (NotificationKind.RESOLVE, "held")]
    for reason in ("client_error", "held"):
        assert sample(h.registry, "incident_router_notifications_dead_lettered_total",
                      receiver="pd", reason=reason) == 1

    # The receiver is fixed; replaying the first one sends the whole incident, in order.
    assert await h.dispatcher.replay(id=parked[0].id) == 2
    await h.dispatcher.wait_idle()
    assert [(e["dedup_key"], e["event_action"]) for e in pd.accepted] == [
        ("inc:fine", "trigger"), ("inc:broken", "trigger"), ("inc:broken", "resolve")]
    assert await h.outbox.list() == []


async def test_retries_stop_at_the_attempt_cap_and_dead_letter(
    serve: Serve, harness: Build
) -> None:
    pd = FakePagerDuty(PD_KEY)
    url = await serve(pd.app())
    h = await harness(receiver_config(type="pagerduty", name="pd", routing_key=PD_KEY,
                                      url=f"{url}/v2/enqueue",
                                      retry={**FAST_RETRY, "max_attempts": 3}))
    pd.fail_for(60.0, status=503)
    h.add(notification(receiver="pd"))
    await h.dispatcher.wait_idle()
    assert len(pd.requests) == 3
    (dead,) = await h.outbox.list()
    assert dead.reason.startswith("server_error: HTTP 503")


async def test_redelivery_after_a_crash_does_not_post_to_slack_twice(
    serve: Serve, harness: Build, session: object
) -> None:
    slack = FakeSlack(TOKEN)
    url = await serve(slack.app())
    config = receiver_config(type="slack", name="s", bot_token=TOKEN, channel="C1",
                             api_url=f"{url}/api", retry=FAST_RETRY)
    store = MemoryDeliveryStore()
    trigger = notification(receiver="s")
    update = notification(NotificationKind.UPDATE, receiver="s")

    # Crash 1: the trigger was posted, the process died before recording anything else.
    sink = build_slack(config, SinkContext(session=session, store=store))  # type: ignore[arg-type]
    assert (await sink.send(trigger)).ok
    # Crash 2: the update was delivered and recorded, the outbox commit was lost.
    h1 = await harness(config, store=store)
    h1.add(update)
    await h1.dispatcher.wait_idle()
    await h1.dispatcher.stop()
    posts_before = len(slack.messages)

    outbox = MemoryOutbox()  # both come back from the outbox after restart
    h2 = await harness(config, store=store, outbox=outbox)
    h2.add(trigger, update)
    await h2.dispatcher.wait_idle()
    assert len(slack.messages) == posts_before == 2
    assert outbox.delivered == [trigger.id, update.id]


async def test_a_burst_to_one_slack_channel_respects_the_rate_limit_and_loses_nothing(
    serve: Serve, harness: Build
) -> None:
    # Slack allows ~1/s per channel; the test runs the same logic at 150/s to stay short
    # (unthrottled, this machine sends well over the fake's 200/s limit).
    slack = FakeSlack(TOKEN, per_second=200)
    url = await serve(slack.app())
    h = await harness(receiver_config(type="slack", name="s", bot_token=TOKEN, channel="C1",
                                      api_url=f"{url}/api", retry=FAST_RETRY,
                                      rate_limit={"per_second": 150, "burst": 1},
                                      concurrency=16))
    burst = [notification(receiver="s", group=f"g{i}", severity=Severity.SEV3,
                          title=f"Disk {i}") for i in range(1000)]
    h.add(*burst)
    await h.dispatcher.wait_idle()
    assert slack.rate_limited == 0
    assert max(slack.windows.values()) <= 200
    assert sorted(m["text"] for m in slack.messages) == sorted(
        f"[SEV3] Disk {i}" for i in range(1000))
    assert await h.outbox.list() == []


async def test_unknown_receiver_is_dead_lettered(harness: Build) -> None:
    h = await harness(receiver_config(type="log", name="log"))
    h.add(notification(receiver="nobody"))
    await h.dispatcher.wait_idle()
    (dead,) = await h.outbox.list()
    assert dead.reason == "unknown_receiver: nobody"


async def test_metrics_are_pre_created_at_zero(harness: Build) -> None:
    h = await harness(receiver_config(type="log", name="log"))
    for name in ("incident_router_notifications_sent_total",
                 "incident_router_notification_retries_total",
                 "incident_router_dead_letters",
                 "incident_router_outbox_backlog",
                 "incident_router_delivery_latency_seconds_count"):
        assert sample(h.registry, name, receiver="log") == 0
    for reason in FAILURE_REASONS:
        for name in ("incident_router_notification_failures_total",
                     "incident_router_notifications_dead_lettered_total"):
            assert sample(h.registry, name, receiver="log", reason=reason) == 0
