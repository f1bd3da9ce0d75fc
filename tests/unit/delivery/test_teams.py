"""Teams Workflows webhook: the Adaptive Card envelope, 202 = accepted."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession

from router.delivery.receivers.teams import TeamsConfig, TeamsSink, build
from router.delivery.records import MemoryDeliveryStore
from router.delivery.sink import SinkContext
from router.model import NotificationKind
from tests.fakes.teams import PATH, FakeTeams
from tests.unit.delivery.conftest import Serve, notification

SIG = "sAsSiGnAtUrE0123456789"


async def teams(serve: Serve, session: ClientSession,
                sig: str = SIG) -> tuple[FakeTeams, TeamsSink]:
    fake = FakeTeams(SIG)
    url = await serve(fake.app())
    config = TeamsConfig(name="t", webhook_url=f"{url}{PATH}?api-version=1&sp=%2Ftriggers"
                                                f"%2Fmanual%2Frun&sv=1.0&sig={sig}")
    return fake, build(config, SinkContext(session=session, store=MemoryDeliveryStore()))


async def test_trigger_posts_an_adaptive_card_envelope(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink = await teams(serve, session)
    result = await sink.send(notification(receiver="t"))
    assert (result.ok, result.status) == (True, 202)
    (req,) = fake.requests
    assert req.query["sig"] == SIG
    envelope = req.json
    assert envelope["type"] == "message"
    (attachment,) = envelope["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title, facts, *_ = card["body"]
    # Markdown-escaped (backslashes), so Teams shows "[SEV2] DiskFull on db-1".
    assert title == {"type": "TextBlock", "text": r"\[SEV2\] DiskFull on db-1", "weight": "Bolder",
                     "size": "Large", "wrap": True, "color": "Attention"}
    assert facts["type"] == "FactSet"
    assert {"title": "Status", "value": "Investigating"} in facts["facts"]
    assert {"title": "Impact", "value": "Disk almost full on db-1"} in facts["facts"]
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Runbook", "url": "https://runbooks.example.net/disk"},
        {"type": "Action.OpenUrl", "title": "Dashboard",
         "url": "https://grafana.example.net/d/disk"},
    ]


@pytest.mark.parametrize(
    ("kind", "headline", "color"),
    [(NotificationKind.UPDATE, r"\[SEV2\] DiskFull on db-1 \(Update\)", "Attention"),
     (NotificationKind.RESOLVE, r"\[SEV2\] Resolved: DiskFull on db-1", "Good")],
)
async def test_update_and_resolution_cards(
    serve: Serve, session: ClientSession, kind: NotificationKind, headline: str,
    color: str,
) -> None:
    fake, sink = await teams(serve, session)
    assert (await sink.send(notification(kind, receiver="t"))).ok
    title = fake.cards[0]["body"][0]
    assert (title["text"], title["color"]) == (headline, color)


async def test_expired_signature_is_permanent(
    serve: Serve, session: ClientSession
) -> None:
    _, sink = await teams(serve, session, sig="old")
    result = await sink.send(notification(receiver="t"))
    assert (result.ok, result.status, result.retryable) == (False, 401, False)
    assert "old" not in result.detail


async def test_throttling_is_retryable(serve: Serve, session: ClientSession) -> None:
    fake, sink = await teams(serve, session)
    fake.fail(429, headers={"Retry-After": "2"})
    result = await sink.send(notification(receiver="t"))
    assert (result.retryable, result.retry_after) == (True, 2.0)
