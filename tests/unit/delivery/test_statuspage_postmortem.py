"""Statuspage: a published post-mortem becomes the public incident's postmortem (draft, then
publish), after the incident was created and resolved."""

from __future__ import annotations

from aiohttp import ClientSession

from router.model import NotificationKind
from tests.unit.delivery.conftest import Serve, notification
from tests.unit.delivery.test_statuspage import PAGE, page


async def test_postmortem_is_drafted_then_published(serve: Serve, session: ClientSession) -> None:
    fake, sink, _ = await page(serve, session)
    assert (await sink.send(notification(receiver="sp"))).ok
    assert (await sink.send(notification(NotificationKind.RESOLVE, receiver="sp"))).ok
    text = "# Post-mortem: DiskFull\nRoot cause: ..."
    published = notification(NotificationKind.UPDATE, receiver="sp", n=2,
                             details={"postmortem_text": text})
    assert (await sink.send(published)).ok
    (incident,) = fake.incidents.values()
    base = f"/v1/pages/{PAGE}/incidents/{incident['id']}/postmortem"
    assert [(r.method, r.path) for r in fake.requests[-2:]] == [("PUT", base),
                                                                ("PUT", f"{base}/publish")]
    assert fake.requests[-2].json == {
        "postmortem": {"body_draft": "# Post-mortem: DiskFull\nRoot cause: ..."}}
    assert fake.requests[-1].json == {
        "postmortem": {"notify_subscribers": True, "notify_twitter": False}}
    assert incident["postmortem_body"] == "# Post-mortem: DiskFull\nRoot cause: ..."
    assert incident["status"] == "resolved"  # the incident itself is left as it was


async def test_a_resolution_announcing_the_postmortem_still_resolves(
    serve: Serve, session: ClientSession
) -> None:
    # The engine's resolutions say "A post-mortem will be shared within 48 hours" under
    # details.postmortem: that is not a published post-mortem.
    fake, sink, _ = await page(serve, session)
    assert (await sink.send(notification(receiver="sp"))).ok
    resolution = notification(NotificationKind.RESOLVE, receiver="sp", details={
        "postmortem": "A post-mortem will be shared within 48 hours."})
    assert (await sink.send(resolution)).ok
    (incident,) = fake.incidents.values()
    assert incident["status"] == "resolved" and "postmortem" not in incident


async def test_postmortem_without_a_public_incident_is_a_clear_failure(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await page(serve, session)
    result = await sink.send(notification(NotificationKind.UPDATE, receiver="sp",
                                          details={"postmortem_text": "text"}))
    assert not result.ok and not result.retryable
    assert result.detail == "no Statuspage incident known for it"
    assert fake.requests == []
