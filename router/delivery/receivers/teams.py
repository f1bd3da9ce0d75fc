"""`teams` receiver: a Teams Workflows ("When a Teams webhook request is received") URL.

Posts the Adaptive Card envelope the Workflows template expects (card version 1.4), with
`Action.OpenUrl` buttons for runbook and dashboard. The trigger answers 202 and runs the flow
asynchronously: a card the flow rejects fails only in the flow's run history. The whole URL
carries its SAS signature, so it is a secret. Teams has no dedup key: the Dispatcher's
delivery record keeps redeliveries from posting twice.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import jinja2
from pydantic import SecretStr

from router.delivery.http import Redactor, classify, dumps, http_call
from router.delivery.ratelimit import RateLimit
from router.delivery.receivers.common import ReceiverSettings
from router.delivery.render import Message, Renderer, first_link, truncate
from router.delivery.result import DeliveryResult
from router.delivery.sink import SinkContext
from router.model import Notification, NotificationKind, Severity

COLORS: dict[Severity, str] = {
    Severity.SEV1: "Attention",
    Severity.SEV2: "Attention",
    Severity.SEV3: "Warning",
    Severity.SEV4: "Default",
}
CARD_VERSION = "1.4"
TEXT_LIMIT = 12_000  # the legacy 28 KB message limit, with room for the envelope
_FACT = re.compile(r"^([A-Z][A-Za-z -]{0,24}): (.+)$")
# What Adaptive Card markdown (TextBlock, Fact title and value) reads as links, emphasis, code,
# headings or HTML-like tags: escaped with a backslash (CommonMark) so alert text stays text.
_MARKDOWN = re.compile(r"([\\`*_~\[\]()<>#!|])")


def escape(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", text)


class TeamsConfig(ReceiverSettings):
    type: Literal["teams"] = "teams"
    webhook_url: SecretStr
    rate_limit: RateLimit = RateLimit(per_second=2.0, burst=4)


def build_card(n: Notification, msg: Message) -> dict[str, Any]:
    resolved = n.kind is NotificationKind.RESOLVE
    facts: list[dict[str, str]] = []
    lines: list[str] = []
    for line in msg.body.splitlines():
        m = _FACT.match(line.strip())
        if m:
            facts.append({"title": escape(m.group(1)),
                          "value": truncate(escape(m.group(2)), 2000)})
        elif line.strip():
            lines.append(line.strip())
    body: list[dict[str, Any]] = [{
        "type": "TextBlock", "text": truncate(escape(msg.headline), 500), "weight": "Bolder",
        "size": "Large", "wrap": True, "color": "Good" if resolved else COLORS[n.severity],
    }]
    if facts:
        body.append({"type": "FactSet", "facts": facts[:20]})
    if lines:
        # Teams needs a blank line for a line break in a TextBlock.
        body.append({"type": "TextBlock",
                     "text": truncate(escape("\n\n".join(lines)), TEXT_LIMIT), "wrap": True})
    actions = [
        {"type": "Action.OpenUrl", "title": label, "url": url}
        for label, field in (("Runbook", "runbook_url"), ("Dashboard", "dashboard_url"))
        if (url := first_link(n, field))
    ]
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if actions:
        content["actions"] = actions
    return {
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None,
            "content": content,
        }],
    }


class TeamsSink:
    def __init__(self, config: TeamsConfig, ctx: SinkContext) -> None:
        self._config = config
        self._http = ctx.http(config)
        self._renderer = Renderer(config.templates)
        self._redact = Redactor([config.webhook_url.get_secret_value()])

    async def send(self, n: Notification) -> DeliveryResult:
        try:
            msg = self._renderer.render(n)
        except jinja2.TemplateError:
            return DeliveryResult.failed("template_error", retryable=False)
        answer = await http_call(self._http, "POST", self._config.webhook_url.get_secret_value(),
                                 body=dumps(build_card(n, msg)))
        if isinstance(answer, DeliveryResult):
            return answer
        return classify(answer, self._redact)


def build(config: TeamsConfig, ctx: SinkContext) -> TeamsSink:
    return TeamsSink(config, ctx)
