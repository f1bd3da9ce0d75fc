"""`incidents.slack_channels` names a bot-mode slack receiver: check-config says otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from router.config import Config


def config(receivers: list[dict[str, Any]]) -> Config:
    return Config.model_validate({
        "receivers": receivers,
        "incidents": {"slack_channels": {"receiver": "bot"}},
    })


@pytest.mark.parametrize(("receivers", "problem"), [
    ([], "incidents.slack_channels.receiver: unknown receiver 'bot' (known: none)"),
    ([{"name": "bot", "type": "log"}],
     "incidents.slack_channels.receiver: receiver 'bot' is not a slack receiver with bot_token"),
    ([{"name": "bot", "type": "slack", "webhook_url": "https://hooks.slack.com/services/x"}],
     "incidents.slack_channels.receiver: receiver 'bot' is not a slack receiver with bot_token"),
    ([{"name": "bot", "type": "slack", "bot_token": "xoxb-1", "channel": "C1"}], None),
])
def test_the_channel_receiver_must_be_a_slack_bot(receivers: list[dict[str, Any]],
                                                  problem: str | None) -> None:
    problems = config(receivers).receiver_problems()
    assert problems == ([f"router.yaml: {problem}"] if problem else [])


def test_defaults() -> None:
    channels = config([]).incidents.slack_channels
    assert channels is not None
    assert (channels.min_severity.value, channels.archive_after.total_seconds(),
            channels.note_emoji, channels.private) == ("SEV2", 86400.0, "pushpin", False)
