"""Incident channels through the Slack bot receiver, against the fake Slack Web API: creation
(and `name_taken`), invites (ids and e-mails), the pinned summary kept current, archiving,
the post-mortem post, rate limits, and a redelivery that never makes a second channel."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from router.delivery.receivers.slack import SlackConfig, SlackSink, build
from router.delivery.receivers.slack_channel import channel_name
from router.delivery.records import MemoryDeliveryStore
from router.delivery.sink import SinkContext
from router.model import Notification, NotificationKind
from tests.fakes.slack import BOT_USER, Channel, FakeSlack
from tests.support.clock import Clock
from tests.unit.delivery.conftest import FAST_RETRY, Build, Serve, notification, receiver_config
from tests.unit.engine.test_incident_restart import Router, start, stop

TOKEN = "xoxb-3333-4444-CHANNELSECRET"
K = NotificationKind


async def bot(serve: Serve, session: ClientSession) -> tuple[FakeSlack, SlackSink,
                                                             MemoryDeliveryStore]:
    fake = FakeSlack(TOKEN)
    fake.add_user("U0ALICE", "alice@example.com")
    fake.add_user("U0BOB")
    url = await serve(fake.app())
    store = MemoryDeliveryStore()
    config = SlackConfig.model_validate({
        "name": "s", "bot_token": TOKEN, "channel": "C0ALERTS", "api_url": f"{url}/api",
        "status_page_url": "https://status.example.com"})
    return fake, build(config, SinkContext(session=session, store=store)), store


def op(kind: NotificationKind, what: str, n: int = 0, **details: Any) -> Notification:
    base = {"channel_op": what, "channel_name": "inc-20260105-checkout-errors",
            "incident_id": "INC-g1", "status": "investigating", "commander": "alice",
            "invite": ["alice@example.com", "U0BOB"], "on_statuspage": True,
            "next_update": "2026-01-05T09:15:00+00:00"}
    return notification(kind, receiver="s", n=n, details={**base, **details})


def methods(fake: FakeSlack) -> list[str]:
    return [m for m, _ in fake.calls]


def test_channel_names_follow_slack_rules() -> None:
    assert channel_name("#inc-20260105-Checkout Errors!") == "inc-20260105-checkout-errors"
    assert channel_name("inc-x", 2) == "inc-x-2"
    long = channel_name("inc-" + "a" * 100, 12)
    assert len(long) == 80 and long.endswith("-12")


async def test_open_creates_invites_posts_and_pins(serve: Serve, session: ClientSession) -> None:
    fake, sink, store = await bot(serve, session)
    assert (await sink.send(op(K.TRIGGER, "open"))).ok
    assert methods(fake) == ["conversations.create", "users.lookupByEmail",
                             "conversations.invite", "conversations.invite", "pins.add"]
    channel = fake.channel_named("inc-20260105-checkout-errors")
    assert channel is not None and not channel.private
    assert channel.members == {BOT_USER, "U0ALICE", "U0BOB"}
    (summary,) = fake.posts_in(channel.id)
    assert channel.pins == [summary["ts"]]
    text = summary["text"]
    assert "*INC-g1* [SEV2] DiskFull on db-1" in text
    for line in ("*Status:* investigating", "*Commander:* alice",
                 "*Runbook:* https://runbooks.example.net/disk",
                 "*Status page:* https://status.example.com",
                 "*Next update:* by 2026-01-05 09:15 UTC"):
        assert line in text
    # The Events API finds the incident by the channel id.
    assert await store.get_ref("s", f"channel-id:{channel.id}") == {
        "incident_id": "INC-g1", "group_key": "g1"}


async def test_name_taken_gets_a_suffix(serve: Serve, session: ClientSession) -> None:
    fake, sink, store = await bot(serve, session)
    fake.channels["C0TAKEN"] = Channel("C0TAKEN", "inc-20260105-checkout-errors")
    assert (await sink.send(op(K.TRIGGER, "open", invite=[]))).ok
    created = [a["name"] for m, a in fake.calls if m == "conversations.create"]
    assert created == ["inc-20260105-checkout-errors", "inc-20260105-checkout-errors-2"]
    made = fake.channel_named("inc-20260105-checkout-errors-2")
    assert made is not None and made.pins
    assert await store.get_ref("s", "channel:INC-g1") == {
        "id": made.id, "name": "inc-20260105-checkout-errors-2"}


async def test_rate_limit_and_redelivery_never_make_a_second_channel(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await bot(serve, session)
    # Created, then Slack rate-limits the invitation: the retry continues from there.
    fake.limit("conversations.invite", retry_after=3)
    first = await sink.send(op(K.TRIGGER, "open"))
    assert not first.ok and first.retryable and first.retry_after == 3.0
    assert (await sink.send(op(K.TRIGGER, "open"))).ok
    assert (await sink.send(op(K.TRIGGER, "open"))).ok  # a redelivery after a crash
    assert methods(fake).count("conversations.create") == 1
    (channel,) = fake.channels.values()
    assert channel.members == {BOT_USER, "U0ALICE", "U0BOB"}
    assert len(fake.posts_in(channel.id)) == 1 and len(channel.pins) == 1


async def test_summary_is_updated_and_new_people_invited(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await bot(serve, session)
    await sink.send(op(K.TRIGGER, "open", invite=["U0BOB"]))
    fake.add_user("U0CAROL")
    result = await sink.send(op(K.UPDATE, "summary", n=1, status="identified",
                                commander="carol", invite=["U0BOB", "U0CAROL"],
                                latest_update="Bad deploy 1234, rolling back"))
    assert result.ok
    (channel,) = fake.channels.values()
    assert channel.members == {BOT_USER, "U0BOB", "U0CAROL"}
    (update,) = fake.updates
    assert update["ts"] == channel.pins[0]
    assert "*Status:* identified" in update["text"]
    assert "*Commander:* carol" in update["text"]
    assert "*Latest update:* Bad deploy 1234, rolling back" in update["text"]
    assert len(fake.posts_in(channel.id)) == 1  # edited, not posted again


async def test_someone_already_in_the_channel_is_fine(serve: Serve,
                                                      session: ClientSession) -> None:
    fake, sink, _ = await bot(serve, session)
    await sink.send(op(K.TRIGGER, "open", invite=[]))
    (channel,) = fake.channels.values()
    channel.members.add("U0BOB")  # joined by themselves
    assert (await sink.send(op(K.UPDATE, "summary", n=1, invite=["U0BOB"]))).ok
    assert ("conversations.invite", {"channel": channel.id, "users": "U0BOB"}) in fake.calls


async def test_unknown_email_is_skipped_and_not_logged(
    serve: Serve, session: ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    fake, sink, _ = await bot(serve, session)
    with caplog.at_level(logging.DEBUG):
        assert (await sink.send(op(K.TRIGGER, "open", invite=["nobody@example.com"]))).ok
    assert "conversations.invite" not in methods(fake)
    assert "nobody@example.com" not in caplog.text
    assert TOKEN not in caplog.text


async def test_someone_slack_refuses_does_not_hold_up_the_summary(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await bot(serve, session)
    assert (await sink.send(op(K.TRIGGER, "open", invite=["U0GONE", "U0BOB"]))).ok
    (channel,) = fake.channels.values()
    assert channel.members == {BOT_USER, "U0BOB"} and channel.pins


async def test_a_bot_removed_from_the_channel_is_a_permanent_error(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await bot(serve, session)
    await sink.send(op(K.TRIGGER, "open", invite=[]))
    (channel,) = fake.channels.values()
    channel.members.discard(BOT_USER)  # someone removed the app
    result = await sink.send(op(K.UPDATE, "postmortem", n=1, postmortem_text="pm"))
    assert not result.ok and not result.retryable and result.detail == "not_in_channel"


async def test_archive_and_post_mortem(serve: Serve, session: ClientSession) -> None:
    fake, sink, _ = await bot(serve, session)
    await sink.send(op(K.TRIGGER, "open", invite=[]))
    (channel,) = fake.channels.values()
    pm = await sink.send(op(K.UPDATE, "postmortem", n=1,
                            postmortem_text="# Post-mortem\nAll good"))
    assert pm.ok and fake.posts_in(channel.id)[-1]["text"] == "# Post-mortem\nAll good"
    assert (await sink.send(op(K.RESOLVE, "archive", n=2))).ok
    assert channel.archived
    assert (await sink.send(op(K.RESOLVE, "archive", n=3))).ok  # already_archived: done
    late = await sink.send(op(K.UPDATE, "postmortem", n=4, postmortem_text="again"))
    assert not late.ok and not late.retryable and late.detail == "is_archived"


async def test_ops_before_the_channel_exists_are_nothing_to_do(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await bot(serve, session)
    for kind, what in ((K.UPDATE, "summary"), (K.RESOLVE, "archive")):
        assert (await sink.send(op(kind, what))).ok
    assert fake.calls == []


async def test_errors_do_not_carry_the_token(serve: Serve, session: ClientSession) -> None:
    fake, sink, _ = await bot(serve, session)
    fake.fail(200, body=f'{{"ok":false,"error":"invalid_auth {TOKEN}"}}')
    result = await sink.send(op(K.TRIGGER, "open"))
    assert not result.ok and TOKEN not in (result.detail or "")


async def test_webhook_mode_cannot_run_channels(serve: Serve, session: ClientSession) -> None:
    config = SlackConfig.model_validate({"name": "s", "webhook_url": "http://127.0.0.1:9/x"})
    sink = build(config, SinkContext(session=session, store=MemoryDeliveryStore()))
    result = await sink.send(op(K.TRIGGER, "open"))
    assert not result.ok and result.detail == "incident channels need bot_token"


async def test_the_dispatcher_waits_out_retry_after_and_finishes_the_channel(
    serve: Serve, harness: Build
) -> None:
    fake = FakeSlack(TOKEN)
    fake.add_user("U0BOB")
    url = await serve(fake.app())
    h = await harness(receiver_config(type="slack", name="s", bot_token=TOKEN, channel="C1",
                                      api_url=f"{url}/api", retry=FAST_RETRY))
    fake.limit("conversations.invite", retry_after=1)
    h.add(op(K.TRIGGER, "open", invite=["U0BOB"]))
    await h.dispatcher.wait_idle()
    limited, retried = [r for r in fake.requests if r.path == "/api/conversations.invite"]
    assert retried.at - limited.at >= 0.9  # Retry-After, not the 10 ms backoff
    (channel,) = fake.channels.values()
    assert channel.members == {BOT_USER, "U0BOB"} and len(channel.pins) == 1
    assert methods(fake).count("conversations.create") == 1
    assert await h.outbox.list() == []


@pytest.fixture
async def routers() -> AsyncIterator[list[Router]]:
    """Embedded backends on one database file, stopped at the end."""
    started: list[Router] = []
    yield started
    for r in started:
        await r.backend.stop()


async def test_a_restart_reads_the_channel_back_from_the_embedded_records(
    serve: Serve, session: ClientSession, tmp_path: Path, routers: list[Router]
) -> None:
    fake = FakeSlack(TOKEN)
    url = await serve(fake.app())
    config = SlackConfig.model_validate({"name": "s", "bot_token": TOKEN, "channel": "C1",
                                         "api_url": f"{url}/api"})
    clock = Clock()
    first = await start(routers, tmp_path / "router.db", clock)
    sink = build(config, SinkContext(session=session, store=first.backend.records))
    assert (await sink.send(op(K.TRIGGER, "open", invite=[]))).ok
    await stop(routers, first)

    second = await start(routers, tmp_path / "router.db", clock)
    again = build(config, SinkContext(session=session, store=second.backend.records))
    assert (await again.send(op(K.TRIGGER, "open", invite=[]))).ok  # redelivered after a crash
    assert (await again.send(op(K.UPDATE, "summary", n=1, status="identified"))).ok
    assert methods(fake).count("conversations.create") == 1
    (channel,) = fake.channels.values()
    assert len(fake.posts_in(channel.id)) == 1
    assert fake.updates[-1]["ts"] == channel.pins[0]
