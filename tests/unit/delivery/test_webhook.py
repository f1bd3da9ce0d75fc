"""Signed generic webhooks (Standard Webhooks 1.0)."""

from __future__ import annotations

import base64

import pytest
from aiohttp import ClientSession

from router.delivery.receivers.webhook import WebhookConfig, WebhookSink, build, sign
from router.delivery.records import MemoryDeliveryStore
from router.delivery.sink import SinkContext
from router.model import NotificationKind, Status
from tests.fakes.webhook import PATH, FakeWebhookConsumer
from tests.unit.delivery.conftest import Serve, alert, notification

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"old-old-old-old-old-old-old-old!").decode()


def test_signature_matches_the_spec_example_construction() -> None:
    # Independent computation of the spec's recipe: HMAC-SHA256 over "id.ts.body".
    import hashlib
    import hmac

    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, b"msg_1.1795773600.{}", hashlib.sha256).digest()).decode()
    assert sign(SECRET, "msg_1", 1795773600, b"{}") == f"v1,{expected}"


@pytest.mark.parametrize(
    "bad", ["whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()]
)
def test_bad_secrets_are_rejected_at_load(bad: str) -> None:
    with pytest.raises(ValueError, match="secret 0"):
        WebhookConfig(name="w", url="https://example.net/h", secrets=[bad])


async def hook(serve: Serve, session: ClientSession, clock: float | None = None,
               secrets: list[str] | None = None) -> tuple[FakeWebhookConsumer, WebhookSink]:
    fake = FakeWebhookConsumer(SECRET)
    url = await serve(fake.app())
    config = WebhookConfig(name="w", url=f"{url}{PATH}?token=abc",
                           secrets=secrets if secrets is not None else [SECRET])
    ctx = SinkContext(session=session, store=MemoryDeliveryStore())
    if clock is None:
        return fake, build(config, ctx)
    return fake, WebhookSink(config, ctx, clock=lambda: clock)


@pytest.mark.parametrize(
    ("kind", "event_type"),
    [(NotificationKind.TRIGGER, "alert.firing"), (NotificationKind.UPDATE, "alert.updated"),
     (NotificationKind.ACKNOWLEDGE, "alert.acknowledged"),
     (NotificationKind.RESOLVE, "alert.resolved")],
)
async def test_signed_event_is_verified_by_a_standard_consumer(
    serve: Serve, session: ClientSession, kind: NotificationKind, event_type: str
) -> None:
    fake, sink = await hook(serve, session)
    n = notification(kind, receiver="w")
    assert (await sink.send(n)).ok
    (req,) = fake.requests
    assert req.headers["webhook-id"] == n.id
    assert req.headers["webhook-timestamp"].isdigit()
    assert req.headers["webhook-signature"].startswith("v1,")
    (event,) = fake.events
    assert event["type"] == event_type
    assert event["timestamp"] == "2026-11-27T10:00:00+00:00"
    data = event["data"]
    assert (data["id"], data["kind"], data["dedup_key"], data["severity"]) == (
        n.id, kind.value, "inc:g1", "SEV2")
    assert data["message"].startswith("[SEV2]")


async def test_the_alerts_arrive_as_their_json_form_with_awkward_values(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink = await hook(serve, session)
    alerts = [alert(value=1e-7, labels={"alertname": "Disk", "host": "wézel\u2028\x00"}),
              alert(Status.RESOLVED, name="Other", value=float("nan")),
              alert(value=1e22, annotations={})]
    n = notification(alerts=alerts, receiver="w")
    assert (await sink.send(n)).ok
    (event,) = fake.events
    sent = event["data"]["alerts"]
    assert sent == [a.model_dump(mode="json") for a in alerts[:1]] + [
        {**alerts[1].model_dump(mode="json"), "value": None},  # NaN is not JSON: null
        alerts[2].model_dump(mode="json")]
    assert sent[0]["labels"]["host"] == "wézel\u2028\x00"
    assert sent[1]["ends_at"] == "2026-11-27T10:42:00Z"


async def test_retries_keep_the_id_and_sign_a_fresh_timestamp(
    serve: Serve, session: ClientSession
) -> None:
    fake = FakeWebhookConsumer(SECRET)
    url = await serve(fake.app())
    times = iter([1_900_000_000.0, 1_900_000_030.0])
    sink = WebhookSink(WebhookConfig(name="w", url=f"{url}{PATH}", secrets=[SECRET]),
                       SinkContext(session=session, store=MemoryDeliveryStore()),
                       clock=lambda: next(times))
    fake.fail(503)
    n = notification(receiver="w")
    assert not (await sink.send(n)).ok
    await sink.send(n)
    first, second = fake.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == n.id
    assert (first.headers["webhook-timestamp"], second.headers["webhook-timestamp"]) == (
        "1900000000", "1900000030")
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]


async def test_rotation_sends_both_signatures(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink = await hook(serve, session, secrets=[OLD_SECRET, SECRET])
    assert (await sink.send(notification(receiver="w"))).ok
    assert len(fake.requests[0].headers["webhook-signature"].split(" ")) == 2


@pytest.mark.parametrize(("status", "retryable"), [(410, False), (301, False), (400, False),
                                                   (429, True), (502, True), (504, True)])
async def test_answers(serve: Serve, session: ClientSession, status: int,
                       retryable: bool) -> None:
    fake, sink = await hook(serve, session)
    fake.fail(status, headers={"Location": "https://elsewhere.example.net/"})
    result = await sink.send(notification(receiver="w"))
    assert (result.ok, result.retryable) == (False, retryable)
    assert len(fake.requests) == 1  # a redirect is not followed
