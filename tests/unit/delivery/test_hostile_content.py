"""Alert text and links are untrusted: they must not ping, link or run anything at the vendor.

An alert's name and annotations come from whoever can write an alerting rule or post to the
generic webhook. Slack mrkdwn reads `<!channel>` as a channel-wide ping and `<url|text>` as a
link; Teams' Adaptive Card markdown reads `[text](url)`; a `javascript:` URL behind a button
runs in the browser of whoever clicks it.
"""

from __future__ import annotations

import json

import pytest
from aiohttp import ClientSession

from router.delivery.receivers import build_receiver
from router.delivery.records import MemoryDeliveryStore
from router.delivery.render import safe_link
from router.delivery.sink import SinkContext
from router.model import Notification
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import WEBHOOK_PATH, FakeSlack
from tests.fakes.teams import PATH as TEAMS_PATH
from tests.fakes.teams import FakeTeams
from tests.unit.delivery.conftest import Serve, alert, notification, receiver_config

PING = "<!channel> <https://evil.example|click>"
MD_LINK = "[click here](https://evil.example) **now** <at>everyone</at>"
EVIL_LINKS = {"runbook_url": "javascript:alert(document.cookie)",
              "dashboard_url": "data:text/html,<script>alert(1)</script>",
              "generator_url": "JAVASCRIPT:alert(2)"}


def hostile(name: str) -> Notification:
    return notification(title=name, alerts=[alert(
        name=name, annotations={"summary": f"{name} (summary)"}, **EVIL_LINKS)])


def urls_in(payload: object) -> list[str]:
    """Every `url`/`href` value anywhere in a JSON payload."""
    found: list[str] = []

    def walk(x: object) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("url", "href") and isinstance(v, str):
                    found.append(v)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(payload)
    return found


async def slack_payload(serve: Serve, session: ClientSession, n: Notification) -> dict[str, object]:
    fake = FakeSlack()
    url = await serve(fake.app()) + WEBHOOK_PATH
    sink = build_receiver(receiver_config(type="slack", name="s", webhook_url=url),
                          SinkContext(session, MemoryDeliveryStore())).sink
    assert (await sink.send(n)).ok
    (req,) = fake.requests
    body: dict[str, object] = req.json
    return body


async def test_slack_escapes_mentions_and_links_in_every_text_field(
        serve: Serve, session: ClientSession) -> None:
    body = await slack_payload(serve, session, hostile(PING))
    raw = json.dumps(body)
    assert "<!channel>" not in raw and "<https://evil.example" not in raw
    escaped = "&lt;!channel&gt; &lt;https://evil.example|click&gt;"
    assert body["text"] == f"[SEV2] {escaped}"  # the preview line a notification shows
    section = body["attachments"][0]["blocks"][0]["text"]["text"]  # type: ignore[index]
    assert section.startswith(f"*[SEV2] {escaped}*")
    assert f"- {escaped}: {escaped} (summary)" in section


async def test_slack_buttons_only_link_http_urls(serve: Serve, session: ClientSession) -> None:
    body = await slack_payload(serve, session, hostile("DiskFull"))
    assert urls_in(body) == []
    actions = body["attachments"][0]["blocks"][1]["elements"]  # type: ignore[index]
    assert [a["action_id"] for a in actions] == ["incident_ack", "incident_resolve"]


async def test_a_safe_link_after_a_hostile_one_is_still_offered(
        serve: Serve, session: ClientSession) -> None:
    n = notification(alerts=[alert(fingerprint="f1", runbook_url="javascript:alert(1)"),
                             alert(fingerprint="f2", runbook_url="https://runbooks.example/ok")])
    body = await slack_payload(serve, session, n)
    assert "https://runbooks.example/ok" in urls_in(body)
    assert not any(u.lower().startswith("javascript") for u in urls_in(body))


async def test_teams_escapes_markdown_and_only_opens_http_urls(
        serve: Serve, session: ClientSession) -> None:
    fake = FakeTeams("sig-1")
    url = await serve(fake.app()) + TEAMS_PATH + "?sig=sig-1"
    sink = build_receiver(receiver_config(type="teams", name="t", webhook_url=url),
                          SinkContext(session, MemoryDeliveryStore())).sink
    assert (await sink.send(hostile(MD_LINK))).ok
    (card,) = fake.cards
    texts = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    texts += [f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]]
    escaped = r"\[click here\]\(https://evil.example\) \*\*now\*\* \<at\>everyone\</at\>"
    assert texts[0] == rf"\[SEV2\] {escaped}"
    assert all("[click" not in t.replace(r"\[", "") for t in texts)
    assert "actions" not in card  # both links were javascript:/data: and are dropped
    assert urls_in(card) == []


async def test_pagerduty_links_are_only_http(serve: Serve, session: ClientSession) -> None:
    fake = FakePagerDuty("k" * 32)
    url = await serve(fake.app())
    sink = build_receiver(receiver_config(type="pagerduty", name="pd", routing_key="k" * 32,
                                          url=url + "/v2/enqueue"),
                          SinkContext(session, MemoryDeliveryStore())).sink
    assert (await sink.send(hostile("DiskFull"))).ok
    (event,) = fake.accepted
    assert "links" not in event


@pytest.mark.parametrize(("url", "ok"), [
    ("https://runbooks.example/disk?x=1#a", True),
    ("HTTP://grafana.example:3000/d/x", True),
    ("javascript:alert(1)", False),
    (" javascript:alert(1)", False),
    ("java\tscript:alert(1)", False),
    ("data:text/html,hi", False),
    ("vbscript:msgbox", False),
    ("//evil.example/x", False),  # scheme-relative
    ("https://", False),
    ("https://ok.example/a|<!channel>", False),
    ("https://ok.example/a>b", False),
    ("/relative/path", False),
])
def test_safe_link(url: str, ok: bool) -> None:
    assert safe_link(url) is ok
