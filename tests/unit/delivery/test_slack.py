"""Slack: webhook mode, and bot mode with a thread per incident and a header kept current."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession

from router.delivery.receivers.slack import SlackConfig, SlackSink, build
from router.delivery.records import MemoryDeliveryStore
from router.delivery.sink import SinkContext
from router.model import NotificationKind, Severity
from tests.fakes.base import Forced
from tests.fakes.slack import WEBHOOK_PATH, FakeSlack
from tests.unit.delivery.conftest import Serve, notification

TOKEN = "xoxb-1111-2222-SECRETTOKEN"


async def bot(
    serve: Serve, session: ClientSession, **extra: object
) -> tuple[FakeSlack, SlackSink, MemoryDeliveryStore]:
    fake = FakeSlack(TOKEN)
    url = await serve(fake.app())
    store = MemoryDeliveryStore()
    config = SlackConfig.model_validate({"name": "s", "bot_token": TOKEN, "channel": "C123",
                                         "api_url": f"{url}/api", **extra})
    return fake, build(config, SinkContext(session=session, store=store)), store


def test_config_needs_exactly_one_mode() -> None:
    with pytest.raises(ValueError, match="either webhook_url or bot_token"):
        SlackConfig(name="s")
    with pytest.raises(ValueError, match="channel is required"):
        SlackConfig(name="s", bot_token=TOKEN)


async def test_trigger_posts_a_coloured_header_with_buttons(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, store = await bot(serve, session)
    assert (await sink.send(notification(receiver="s"))).ok
    (req,) = fake.requests
    assert (req.method, req.path) == ("POST", "/api/chat.postMessage")
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    body = req.json
    assert body["channel"] == "C123"
    assert body["text"] == "[SEV2] DiskFull on db-1"
    assert body["unfurl_links"] is False
    (attachment,) = body["attachments"]
    assert attachment["color"] == "#E8912D"
    section, actions = attachment["blocks"]
    assert section["type"] == "section"
    assert section["text"]["text"].startswith("*[SEV2] DiskFull on db-1*\nStatus: Investigating")
    assert actions == {"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Runbook"},
         "action_id": "open_runbook", "url": "https://runbooks.example.net/disk"},
        {"type": "button", "text": {"type": "plain_text", "text": "Dashboard"},
         "action_id": "open_dashboard", "url": "https://grafana.example.net/d/disk"},
        {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"},
         "action_id": "incident_ack", "value": "INC-g1", "style": "primary"},
        {"type": "button", "text": {"type": "plain_text", "text": "Resolve"},
         "action_id": "incident_resolve", "value": "INC-g1", "style": "danger"},
    ]}
    assert await store.get_ref("s", "slack-thread:inc:g1") == {
        "channel": "C123", "ts": fake.messages[0]["ts"]}


async def test_update_and_resolution_go_into_the_thread_and_update_the_header(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await bot(serve, session)
    await sink.send(notification(receiver="s"))
    header_ts = fake.messages[0]["ts"]
    assert (await sink.send(notification(NotificationKind.UPDATE, receiver="s",
                                         details={"root_cause": "log rotation off"}))).ok
    assert (await sink.send(notification(NotificationKind.RESOLVE, receiver="s"))).ok
    paths = [r.path for r in fake.requests]
    assert paths == ["/api/chat.postMessage", "/api/chat.postMessage", "/api/chat.update",
                     "/api/chat.postMessage", "/api/chat.update"]
    update_reply, resolve_reply = fake.messages[1], fake.messages[2]
    assert update_reply["thread_ts"] == header_ts and update_reply["reply_broadcast"] is False
    assert "Root cause: log rotation off" in update_reply["attachments"][0]["blocks"][0][
        "text"]["text"]
    assert resolve_reply["thread_ts"] == header_ts and resolve_reply["reply_broadcast"] is True
    assert resolve_reply["text"] == "[SEV2] Resolved: DiskFull on db-1"
    final_header = fake.updates[-1]
    assert (final_header["channel"], final_header["ts"]) == ("C123", header_ts)
    assert final_header["attachments"][0]["color"] == "#2EB67D"
    # Resolved: no more Acknowledge/Resolve buttons, runbook stays.
    elements = final_header["attachments"][0]["blocks"][1]["elements"]
    assert [e["action_id"] for e in elements] == ["open_runbook", "open_dashboard"]


async def test_a_retried_update_does_not_post_its_thread_reply_twice(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await bot(serve, session)
    await sink.send(notification(receiver="s"))
    # The reply goes through, then chat.update hits a Slack server error.
    fake.answer_with(Forced(200, body='{"ok":true,"ts":"1.2","channel":"C123"}'))
    fake.answer_with(Forced(200, body='{"ok":false,"error":"internal_error"}'))
    first = await sink.send(notification(NotificationKind.UPDATE, receiver="s"))
    assert (first.ok, first.reason, first.retryable) == (False, "server_error", True)
    assert (await sink.send(notification(NotificationKind.UPDATE, receiver="s"))).ok
    replies = [r for r in fake.requests[1:] if r.path == "/api/chat.postMessage"]
    assert len(replies) == 1


@pytest.mark.parametrize(
    ("error", "reason", "retryable"),
    [
        ("ratelimited", "rate_limited", True),
        ("internal_error", "server_error", True),
        ("channel_not_found", "vendor_error", False),
        ("not_in_channel", "vendor_error", False),
        ("invalid_blocks", "vendor_error", False),
    ],
)
async def test_http_200_ok_false_is_classified(
    serve: Serve, session: ClientSession, error: str, reason: str, retryable: bool
) -> None:
    fake, sink, _ = await bot(serve, session)
    fake.answer_with(Forced(200, body=f'{{"ok":false,"error":"{error}"}}'))
    result = await sink.send(notification(receiver="s"))
    assert (result.ok, result.reason, result.retryable, result.detail) == (
        False, reason, retryable, error)


async def test_http_429_carries_retry_after(serve: Serve, session: ClientSession) -> None:
    fake, sink, _ = await bot(serve, session)
    fake.fail(429, headers={"Retry-After": "7"}, body='{"ok":false,"error":"ratelimited"}')
    result = await sink.send(notification(receiver="s"))
    assert (result.reason, result.retryable, result.retry_after) == ("rate_limited", True, 7.0)


@pytest.mark.parametrize(
    ("severity", "color"),
    [(Severity.SEV1, "#E01E5A"), (Severity.SEV3, "#ECB22E"), (Severity.SEV4, "#439FE0")],
)
async def test_severity_colour(
    serve: Serve, session: ClientSession, severity: Severity, color: str
) -> None:
    fake, sink, _ = await bot(serve, session)
    await sink.send(notification(receiver="s", severity=severity))
    assert fake.messages[0]["attachments"][0]["color"] == color


async def test_webhook_mode_posts_to_the_secret_url(
    serve: Serve, session: ClientSession
) -> None:
    fake = FakeSlack()
    url = await serve(fake.app())
    sink = build(SlackConfig(name="s", webhook_url=f"{url}{WEBHOOK_PATH}"),
                 SinkContext(session=session, store=MemoryDeliveryStore()))
    assert (await sink.send(notification(receiver="s"))).ok
    assert (await sink.send(notification(NotificationKind.RESOLVE, receiver="s"))).ok
    assert [r.path for r in fake.requests] == [WEBHOOK_PATH, WEBHOOK_PATH]
    first, resolved = fake.messages
    assert "channel" not in first and "thread_ts" not in resolved
    assert resolved["attachments"][0]["color"] == "#2EB67D"


async def test_webhook_mode_4xx_text_is_permanent(
    serve: Serve, session: ClientSession
) -> None:
    fake = FakeSlack()
    url = await serve(fake.app())
    sink = build(SlackConfig(name="s", webhook_url=f"{url}{WEBHOOK_PATH}"),
                 SinkContext(session=session, store=MemoryDeliveryStore()))
    fake.fail(404, body="no_active_hooks", content_type="text/plain")
    result = await sink.send(notification(receiver="s"))
    assert (result.ok, result.reason, result.retryable, result.detail) == (
        False, "client_error", False, "no_active_hooks")


async def test_long_text_is_cut_to_slack_section_limit(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await bot(serve, session)
    assert (await sink.send(notification(receiver="s", details={"impact": "x" * 10_000}))).ok
    section = fake.messages[0]["attachments"][0]["blocks"][0]["text"]["text"]
    assert len(section) == 3000 and section.endswith("…")


async def test_mrkdwn_control_characters_are_escaped(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await bot(serve, session)
    await sink.send(notification(receiver="s", title="a<b> & <!channel>"))
    text = fake.messages[0]["attachments"][0]["blocks"][0]["text"]["text"]
    assert text.startswith("*[SEV2] a&lt;b&gt; &amp; &lt;!channel&gt;*")
