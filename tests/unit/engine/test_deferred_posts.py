"""Quiet chat posts for deferred alerts (issue 15): outside business hours a SEV3 alert waits
for the opening on its paging receivers, while chat receivers get one quiet post saying until
when (with `business_hours.chat_when_deferred: quiet`); the real notification follows at the
opening. Config through router.yaml and the factory's context, as the router runs it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from router.backends.factory import engine_context
from router.config import ConfigError, parse_config
from router.delivery.receivers.slack import build_message
from router.delivery.receivers.teams import build_card
from router.delivery.render import Renderer
from router.engine import Engine
from router.model import Alert, AlertEvent, Notification, Severity, Status

MONDAY_3AM = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


def config(chat: str | None = "quiet", **extra: Any) -> dict[str, Any]:
    hours: dict[str, Any] = {
        "default": "office",
        "calendars": [{"name": "office", "time_zone": "UTC", "hours": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}]}],
    }
    if chat is not None:
        hours["chat_when_deferred"] = chat
    return {
        "receivers": [
            {"name": "chat", "type": "slack", "webhook_url": "https://hooks.slack.invalid/x"},
            {"name": "ms", "type": "teams", "webhook_url": "https://teams.invalid/x"},
            {"name": "pd", "type": "pagerduty", "routing_key": "r" * 32},
        ],
        "severities": {s: {"receivers": ["chat", "ms", "pd"]} for s in ("SEV2", "SEV3")},
        "business_hours": hours,
        **extra,
    }


def engine(cfg: dict[str, Any]) -> Engine:
    return Engine(engine_context(parse_config(yaml.safe_dump(cfg))))


def alert(sev: Severity = Severity.SEV3, fp: str = "a", hours: float = 0) -> AlertEvent:
    t = MONDAY_3AM + timedelta(hours=hours)
    return AlertEvent(alert=Alert(source="alertmanager", fingerprint=fp, status=Status.FIRING,
                                  name="QueueBacklog", starts_at=t, received_at=t,
                                  severity=sev, service="billing"))


def sent(e: Engine, events: list[AlertEvent], hours: float) -> list[Notification]:
    return e.apply(events, MONDAY_3AM + timedelta(hours=hours)).notifications


@pytest.mark.parametrize(
    ("chat", "sev", "quiet_to"),
    [
        ("quiet", Severity.SEV3, ["chat", "ms"]),  # chat receivers only, never pd
        ("none", Severity.SEV3, []),
        (None, Severity.SEV3, []),  # the default is none
        ("quiet", Severity.SEV2, []),  # a paging severity is not deferred: no quiet post
    ],
)
def test_who_gets_a_quiet_post_when_an_alert_is_deferred(
        chat: str | None, sev: Severity, quiet_to: list[str]) -> None:
    e = engine(config(chat))
    out = sent(e, [alert(sev)], 0) + sent(e, [], 0.5)
    quiet = [n for n in out if n.details.get("quiet")]
    assert sorted(n.receiver for n in quiet) == quiet_to
    if sev is Severity.SEV3:
        assert [n for n in out if not n.details.get("quiet")] == []


def test_the_quiet_post_says_until_when_and_the_page_waits_for_the_opening() -> None:
    e = engine(config())
    (post, _) = sent(e, [alert()], 0)
    assert post.kind.value == "update"
    assert post.details["deferred_until"] == "2026-03-02T09:00:00+00:00"
    assert post.details["note"] == ("Deferred until 2026-03-02 09:00 UTC (outside business "
                                    "hours, calendar office): paging receivers wait until then.")
    # Nothing more before the opening, a second deferred alert of the group excepted.
    assert sent(e, [], 1) == [] and sent(e, [], 5.9) == []
    more = sent(e, [alert(fp="b", hours=2)], 2)
    assert sorted(n.receiver for n in more) == ["chat", "ms"]
    assert [a.fingerprint for a in more[0].alerts] == ["b"]
    # The opening: the real notification, to everyone.
    opening = sent(e, [], 6)
    assert sorted((n.kind.value, n.receiver) for n in opening) == [
        ("trigger", "chat"), ("trigger", "ms"), ("trigger", "pd")]
    assert not any(n.details.get("quiet") for n in opening)


def test_a_re_sent_alert_does_not_post_again() -> None:
    e = engine(config())
    assert len(sent(e, [alert()], 0)) == 2
    assert sent(e, [alert(hours=1)], 1) == []


def test_the_slack_and_teams_posts_mention_nobody_and_say_deferred() -> None:
    e = engine(config())
    posts = {n.receiver: n for n in sent(e, [alert()], 0)}
    renderer = Renderer()
    slack = build_message(posts["chat"], renderer.render(posts["chat"]), buttons=True)
    text = yaml.safe_dump(slack)
    assert "<!" not in text and "<@" not in text  # no @here/@channel, no user mention
    assert slack["text"] == "[SEV3] QueueBacklog (billing) (Deferred)"
    section = slack["attachments"][0]["blocks"][0]["text"]["text"]
    assert "Deferred until 2026-03-02 09:00 UTC" in section
    card = build_card(posts["ms"], renderer.render(posts["ms"]))
    assert "Deferred until 2026-03-02 09:00 UTC" in yaml.safe_dump(card)
    assert "mention" not in yaml.safe_dump(card)


def test_check_config_refuses_an_unknown_chat_when_deferred() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_dump(config("loud")))
    assert str(err.value) == (
        "router.yaml: business_hours.chat_when_deferred: Input should be 'quiet' or 'none'")
