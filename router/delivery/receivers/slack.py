"""`slack` receiver: an incoming webhook, or a bot token posting to one channel.

Bot mode keeps a conversation per incident: the first notification posts the header with
`chat.postMessage` and stores its (channel, ts) under the dedup key; later ones reply in that
thread (`thread_ts`) and `chat.update` the header to the latest state. Each step is recorded
under the notification id, so a retry or a redelivery after a crash never posts twice.

Errors: the Web API answers HTTP 200 `{"ok": false, "error": ...}`; `ratelimited` and Slack's
own server errors are retried, anything else is permanent. HTTP 429 carries Retry-After.
Limits: section text 3,000 chars, `text` 40,000, button value 2,000, ~1 message/s per channel.
"""

from __future__ import annotations

from typing import Any, Literal

import jinja2
from pydantic import SecretStr, model_validator

from router.delivery.http import Redactor, classify, dumps, http_call
from router.delivery.ratelimit import RateLimit
from router.delivery.receivers.common import ReceiverSettings
from router.delivery.receivers.slack_api import escape, web_api
from router.delivery.receivers.slack_channel import OP, ChannelOps
from router.delivery.records import DeliveryStore
from router.delivery.render import Message, Renderer, first_link, truncate
from router.delivery.result import DeliveryResult
from router.delivery.sink import SinkContext
from router.model import Notification, NotificationKind, Severity

COLORS: dict[Severity, str] = {
    Severity.SEV1: "#E01E5A",
    Severity.SEV2: "#E8912D",
    Severity.SEV3: "#ECB22E",
    Severity.SEV4: "#439FE0",
}
RESOLVED_COLOR = "#2EB67D"
SECTION_LIMIT = 3000
TEXT_LIMIT = 3000  # fallback/notification text; far below Slack's 40,000
ACK_ACTION = "incident_ack"
RESOLVE_ACTION = "incident_resolve"


class SlackConfig(ReceiverSettings):
    type: Literal["slack"] = "slack"
    # Either an incoming webhook URL ...
    webhook_url: SecretStr | None = None
    # ... or a bot token (scope chat:write) and a channel ID, for threads and header updates.
    bot_token: SecretStr | None = None
    channel: str | None = None
    api_url: str = "https://slack.com/api"
    # Acknowledge / Resolve buttons (need the app's interactivity URL pointed at the router).
    buttons: bool = True
    rate_limit: RateLimit = RateLimit(per_second=1.0, burst=1)
    # Linked in the incident channel's summary when the incident is on the status page.
    status_page_url: str | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> SlackConfig:
        if (self.webhook_url is None) == (self.bot_token is None):
            raise ValueError("set either webhook_url or bot_token (with channel), not both")
        if self.bot_token is not None and not self.channel:
            raise ValueError("channel is required with bot_token")
        return self


def _button(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, **extra}


def build_message(n: Notification, msg: Message, *, buttons: bool) -> dict[str, Any]:
    """`text` (notification fallback) plus one coloured attachment holding the blocks."""
    resolved = n.kind is NotificationKind.RESOLVE
    section = truncate(f"*{escape(msg.headline)}*\n{escape(msg.body)}", SECTION_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": section}}
    ]
    elements: list[dict[str, Any]] = []
    for label, field in (("Runbook", "runbook_url"), ("Dashboard", "dashboard_url")):
        url = first_link(n, field)
        if url:
            elements.append(_button(label, action_id=f"open_{field.split('_')[0]}", url=url))
    if buttons and not resolved:
        value = truncate(n.incident_id or n.group_key, 2000)
        if n.kind is not NotificationKind.ACKNOWLEDGE:
            elements.append(_button("Acknowledge", action_id=ACK_ACTION, value=value,
                                    style="primary"))
        elements.append(_button("Resolve", action_id=RESOLVE_ACTION, value=value,
                                style="danger"))
    if elements:
        blocks.append({"type": "actions", "elements": elements})
    return {
        "text": truncate(escape(msg.headline), TEXT_LIMIT),
        "attachments": [
            {"color": RESOLVED_COLOR if resolved else COLORS[n.severity], "blocks": blocks}
        ],
    }


class SlackSink:
    def __init__(self, config: SlackConfig, ctx: SinkContext) -> None:
        self._config = config
        self._http = ctx.http(config)
        self._store: DeliveryStore = ctx.store
        self._renderer = Renderer(config.templates)
        secrets = [s.get_secret_value() for s in (config.webhook_url, config.bot_token) if s]
        self._redact = Redactor(secrets)
        self._channels = ChannelOps(
            config.name, self._http, config.api_url, config.bot_token, ctx.store, self._redact,
            config.status_page_url) if config.bot_token is not None else None

    async def send(self, n: Notification) -> DeliveryResult:
        if OP in n.details:  # the incident channel (incidents.slack_channels)
            if self._channels is None:
                return DeliveryResult.failed("vendor_error", retryable=False,
                                             detail="incident channels need bot_token")
            return await self._channels.send(n)
        try:
            msg = self._renderer.render(n)
        except jinja2.TemplateError:
            return DeliveryResult.failed("template_error", retryable=False)
        body = build_message(n, msg, buttons=self._config.buttons)
        if self._config.webhook_url is not None:
            return await self._webhook(body)
        return await self._bot(n, body)

    async def _webhook(self, body: dict[str, Any]) -> DeliveryResult:
        assert self._config.webhook_url is not None
        answer = await http_call(self._http, "POST",
                                 self._config.webhook_url.get_secret_value(), body=dumps(body))
        if isinstance(answer, DeliveryResult):
            return answer
        return classify(answer, self._redact)

    async def _api(self, method: str, body: dict[str, Any]) -> tuple[DeliveryResult, Any]:
        assert self._config.bot_token is not None
        return await web_api(self._http, self._config.api_url, self._config.bot_token, method,
                             body, self._redact)

    async def _bot(self, n: Notification, body: dict[str, Any]) -> DeliveryResult:
        name = self._config.name
        thread_key = f"slack-thread:{n.dedup_key}"
        thread = await self._store.get_ref(name, thread_key)
        if n.kind is NotificationKind.TRIGGER or thread is None:
            if await self._store.get_ref(name, f"slack-post:{n.id}") is not None:
                return DeliveryResult.delivered()
            result, data = await self._api(
                "chat.postMessage",
                {"channel": self._config.channel, **body, "unfurl_links": False},
            )
            if result.ok:
                ref = {"channel": str(data.get("channel") or self._config.channel),
                       "ts": str(data.get("ts", ""))}
                await self._store.put_ref(name, thread_key, ref)
                await self._store.put_ref(name, f"slack-post:{n.id}", ref)
            return result
        if await self._store.get_ref(name, f"slack-reply:{n.id}") is None:
            result, data = await self._api(
                "chat.postMessage",
                {"channel": thread["channel"], "thread_ts": thread["ts"], **body,
                 "unfurl_links": False,
                 "reply_broadcast": n.kind is NotificationKind.RESOLVE},
            )
            if not result.ok:
                return result
            await self._store.put_ref(name, f"slack-reply:{n.id}", {"ts": str(data.get("ts"))})
        result, _ = await self._api(
            "chat.update", {"channel": thread["channel"], "ts": thread["ts"], **body}
        )
        if not result.ok and not result.retryable:
            # The thread reply (the message people read) is posted; a header that can no
            # longer be edited (deleted, too old) is not worth a dead letter.
            return DeliveryResult.delivered(result.status)
        return result


def build(config: SlackConfig, ctx: SinkContext) -> SlackSink:
    return SlackSink(config, ctx)
