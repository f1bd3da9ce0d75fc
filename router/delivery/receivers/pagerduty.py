"""`pagerduty` receiver: Events API v2 (`POST /v2/enqueue`), trigger / acknowledge / resolve.

The routing key travels in the body, so it is the secret here. The incident's `dedup_key` makes
redeliveries idempotent at PagerDuty; every non-ack, non-resolve kind is a `trigger` with that
key, which PagerDuty folds into the open alert.

Incident pages (`PAGE`, one per escalation level) carry their own dedup key from the engine,
`<incident dedup key>:page-<step>` (`:manual-<n>` for `/incident page`), so each level is a
separate PagerDuty alert/incident that PagerDuty shows and routes; `custom_details.targets`
and `custom_details.level` name who the level pages. The engine acknowledges and resolves
every page key when the incident is acknowledged or resolved. `REMINDER` (post-mortem due,
after resolution) is not sent: a trigger would re-open the resolved alert.

Limits: summary 1,024 chars, body 512 KB (custom details are dropped first, as Alertmanager
does), ~120 events/min per routing key.
"""

from __future__ import annotations

from typing import Any, Literal

import jinja2
from pydantic import Field, SecretStr

from router.delivery.http import Redactor, classify, dumps, http_call
from router.delivery.ratelimit import RateLimit
from router.delivery.receivers.common import ReceiverSettings
from router.delivery.render import Renderer, first_link, truncate, truncate_bytes
from router.delivery.result import DeliveryResult
from router.delivery.sink import SinkContext
from router.model import Notification, NotificationKind, Severity

SEVERITY: dict[Severity, str] = {
    Severity.SEV1: "critical",
    Severity.SEV2: "error",
    Severity.SEV3: "warning",
    Severity.SEV4: "info",
}
MAX_BODY_BYTES = 512_000
SUMMARY_LIMIT = 1024
DEDUP_KEY_LIMIT = 255


class PagerDutyConfig(ReceiverSettings):
    type: Literal["pagerduty"] = "pagerduty"
    routing_key: SecretStr
    # EU accounts: https://events.eu.pagerduty.com/v2/enqueue
    url: str = "https://events.pagerduty.com/v2/enqueue"
    client: str = "incident-router"
    client_url: str | None = None
    # ~120 events/min per routing key, with PagerDuty's 60 s look-back allowing short bursts.
    rate_limit: RateLimit = RateLimit(per_second=2.0, burst=20)
    # What `source` is when the alerts carry no instance/host label.
    default_source: str = Field(default="incident-router", min_length=1)


def event_action(kind: NotificationKind) -> str:
    if kind is NotificationKind.ACKNOWLEDGE:
        return "acknowledge"
    if kind is NotificationKind.RESOLVE:
        return "resolve"
    return "trigger"


def _source(n: Notification, default: str) -> str:
    for a in n.alerts:
        for label in ("instance", "host", "hostname", "service", "job"):
            if a.labels.get(label):
                return a.labels[label]
    return default


def _page_suffix(n: Notification) -> str:
    level = n.details.get("level")
    targets = ", ".join(str(t) for t in n.details.get("targets") or ())
    where = f"level {level}" if level else "page"
    return f" ({where}: {targets})" if targets else f" ({where})"


def build_event(config: PagerDutyConfig, n: Notification, text: str) -> dict[str, Any]:
    page = n.kind is NotificationKind.PAGE
    base: dict[str, Any] = {
        "routing_key": config.routing_key.get_secret_value(),
        "event_action": event_action(n.kind),
        "dedup_key": n.dedup_key[:DEDUP_KEY_LIMIT],
    }
    if base["event_action"] != "trigger":
        return base
    first = n.alerts[0] if n.alerts else None
    payload: dict[str, Any] = {
        "summary": truncate(f"[{n.severity.value}] {n.title}{_page_suffix(n) if page else ''}",
                            SUMMARY_LIMIT),
        "source": _source(n, config.default_source),
        "severity": SEVERITY[n.severity],
        "timestamp": n.created_at.isoformat(),
    }
    component = (first.service if first else None) or n.details.get("service")
    group = (first.team if first else None) or n.details.get("team")
    if component:
        payload["component"] = str(component)
    if group:
        payload["group"] = str(group)
    if first is not None:
        payload["class"] = first.name
    payload["custom_details"] = {
        "message": text,
        "incident_id": n.incident_id,
        "group_key": n.group_key,
        "kind": n.kind.value,
        "alerts": [
            {"name": a.name, "status": a.status.value, "labels": a.labels,
             "annotations": a.annotations, "value": a.value}
            for a in n.alerts
        ],
    }
    if page:
        payload["custom_details"]["targets"] = list(n.details.get("targets") or ())
        payload["custom_details"]["level"] = n.details.get("level")
    links = [
        {"href": href, "text": label}
        for label, field in (("Runbook", "runbook_url"), ("Dashboard", "dashboard_url"),
                             ("Source", "generator_url"))
        if (href := first_link(n, field))
    ]
    event = {**base, "payload": payload, "client": config.client}
    if config.client_url:
        event["client_url"] = config.client_url
    if links:
        event["links"] = links
    if len(dumps(event)) > MAX_BODY_BYTES:
        payload["custom_details"] = {
            "message": truncate_bytes(text, 100_000), "incident_id": n.incident_id,
            "note": "alerts omitted: the event exceeded PagerDuty's 512 KB limit",
        }
    return event


class PagerDutySink:
    def __init__(self, config: PagerDutyConfig, ctx: SinkContext) -> None:
        self._config = config
        self._http = ctx.http(config)
        self._renderer = Renderer(config.templates)
        self._redact = Redactor([config.routing_key.get_secret_value()])

    async def send(self, n: Notification) -> DeliveryResult:
        if n.kind is NotificationKind.REMINDER:
            return DeliveryResult.delivered()  # nothing to say to a pager after resolution
        try:
            text = self._renderer.render(n).text
        except jinja2.TemplateError:
            return DeliveryResult.failed("template_error", retryable=False)
        event = build_event(self._config, n, text)
        answer = await http_call(self._http, "POST", self._config.url, body=dumps(event))
        if isinstance(answer, DeliveryResult):
            return answer
        return classify(answer, self._redact)


def build(config: PagerDutyConfig, ctx: SinkContext) -> PagerDutySink:
    return PagerDutySink(config, ctx)
