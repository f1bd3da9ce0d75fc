"""`statuspage` receiver: a public incident on an Atlassian Statuspage page.

Only the public story is told: a trigger creates the incident (status investigating, impact
and component status from the severity), an update adds an incident update, a resolution
resolves it and sets the components back to operational. Internal chatter (ack, repeat,
escalation, SLA, reminders) is not published and counts as delivered.

Statuspage has no client idempotency key, so the incident id is stored per dedup key, and
before creating, the unresolved incidents are searched for our `metadata.router.dedup_key`
(a crash between create and store must not open a second public incident).
Auth `Authorization: OAuth <key>`; 1 request/s per token, throttled with 420 or 429.
"""

from __future__ import annotations

from typing import Any, Literal

import jinja2
from pydantic import Field, SecretStr

from router.delivery.http import Redactor, classify, dumps, http_call
from router.delivery.ratelimit import RateLimit
from router.delivery.receivers.common import ReceiverSettings
from router.delivery.records import DeliveryStore
from router.delivery.render import Renderer, truncate
from router.delivery.result import DeliveryResult
from router.delivery.sink import SinkContext
from router.model import Notification, NotificationKind, Severity

ComponentStatus = Literal[
    "operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"
]
Impact = Literal["none", "minor", "major", "critical"]
IncidentStatus = Literal["investigating", "identified", "monitoring", "resolved"]
RATE_LIMITED = frozenset({420, 429})
COMPONENT_STATUS: dict[Severity, ComponentStatus] = {
    Severity.SEV1: "major_outage", Severity.SEV2: "partial_outage",
    Severity.SEV3: "degraded_performance", Severity.SEV4: "degraded_performance",
}
IMPACT: dict[Severity, Impact] = {
    Severity.SEV1: "critical", Severity.SEV2: "major", Severity.SEV3: "minor",
    Severity.SEV4: "none",
}
PUBLISHED = {NotificationKind.TRIGGER, NotificationKind.UPDATE, NotificationKind.RESOLVE}


class StatuspageConfig(ReceiverSettings):
    type: Literal["statuspage"] = "statuspage"
    page_id: str = Field(min_length=1)
    api_key: SecretStr
    api_url: str = "https://api.statuspage.io/v1"
    component_ids: list[str] = Field(default_factory=list)
    component_status: dict[Severity, ComponentStatus] = Field(
        default_factory=lambda: dict(COMPONENT_STATUS)
    )
    impact: dict[Severity, Impact] = Field(default_factory=lambda: dict(IMPACT))
    deliver_notifications: bool = True
    # A notification may take two requests (look-up + create): half the 1/s token limit.
    rate_limit: RateLimit = RateLimit(per_second=0.5, burst=1)


def _status(n: Notification) -> IncidentStatus:
    if n.kind is NotificationKind.RESOLVE:
        return "resolved"
    wanted = str(n.details.get("status", "")).lower()
    if wanted in ("investigating", "identified", "monitoring"):
        return wanted  # type: ignore[return-value]
    return "investigating" if n.kind is NotificationKind.TRIGGER else "identified"


def component_ids(config: StatuspageConfig, n: Notification) -> list[str]:
    """The incident's components: `details.component_ids` (set by the engine from
    `incidents.components`, service -> component id), else the receiver's `component_ids`."""
    ids = n.details.get("component_ids")
    if isinstance(ids, list) and ids:
        return [str(c) for c in ids]
    return list(config.component_ids)


def build_incident(config: StatuspageConfig, n: Notification, text: str) -> dict[str, Any]:
    resolved = n.kind is NotificationKind.RESOLVE
    comp_status = "operational" if resolved else config.component_status[n.severity]
    incident: dict[str, Any] = {
        "status": _status(n),
        "body": truncate(text, 25_000),
        "deliver_notifications": config.deliver_notifications,
    }
    components = component_ids(config, n)
    if components:
        incident["component_ids"] = components
        incident["components"] = {c: comp_status for c in components}
    if n.kind is NotificationKind.TRIGGER:
        incident["name"] = truncate(n.title, 255)
        incident["impact_override"] = config.impact[n.severity]
        incident["metadata"] = {"router": {"dedup_key": n.dedup_key}}
    return {"incident": incident}


class StatuspageSink:
    def __init__(self, config: StatuspageConfig, ctx: SinkContext) -> None:
        self._config = config
        self._http = ctx.http(config)
        self._store: DeliveryStore = ctx.store
        self._renderer = Renderer(config.templates)
        self._redact = Redactor([config.api_key.get_secret_value()])
        self._base = f"{config.api_url.rstrip('/')}/pages/{config.page_id}"

    async def _call(self, method: str, path: str,
                    body: dict[str, Any] | None = None) -> tuple[DeliveryResult, Any]:
        answer = await http_call(
            self._http, method, self._base + path,
            body=dumps(body) if body is not None else None,
            headers={"Authorization": f"OAuth {self._config.api_key.get_secret_value()}"},
        )
        if isinstance(answer, DeliveryResult):
            return answer, None
        return classify(answer, self._redact, rate_limit_statuses=RATE_LIMITED), answer.json()

    async def _find_open(self, dedup_key: str) -> tuple[DeliveryResult, str | None]:
        result, data = await self._call("GET", "/incidents/unresolved")
        if not result.ok:
            return result, None
        for inc in data if isinstance(data, list) else []:
            meta = inc.get("metadata") if isinstance(inc, dict) else None
            router = meta.get("router") if isinstance(meta, dict) else None
            if isinstance(router, dict) and router.get("dedup_key") == dedup_key:
                return result, str(inc.get("id"))
        return result, None

    async def _postmortem(self, n: Notification, text: str) -> DeliveryResult:
        """A published post-mortem: the incident's postmortem draft, then publish it."""
        ref = await self._store.get_ref(self._config.name, f"statuspage-incident:{n.dedup_key}")
        if ref is None or not ref.get("id"):
            return DeliveryResult.failed("vendor_error", retryable=False,
                                         detail="no Statuspage incident known for it")
        path = f"/incidents/{ref['id']}/postmortem"
        result, _ = await self._call("PUT", path,
                                     {"postmortem": {"body_draft": truncate(text, 100_000)}})
        if not result.ok:
            return result
        result, _ = await self._call("PUT", path + "/publish", {"postmortem": {
            "notify_subscribers": self._config.deliver_notifications,
            "notify_twitter": False}})
        return result

    async def send(self, n: Notification) -> DeliveryResult:
        if n.details.get("postmortem_text"):  # a published post-mortem (engine: channel.py)
            return await self._postmortem(n, str(n.details["postmortem_text"]))
        if n.kind not in PUBLISHED:
            return DeliveryResult.delivered()
        try:
            text = self._renderer.render(n).text
        except jinja2.TemplateError:
            return DeliveryResult.failed("template_error", retryable=False)
        key = f"statuspage-incident:{n.dedup_key}"
        ref = await self._store.get_ref(self._config.name, key)
        incident_id = ref.get("id") if ref else None
        if incident_id is None:
            result, incident_id = await self._find_open(n.dedup_key)
            if not result.ok:
                return result
            if incident_id is not None:
                await self._store.put_ref(self._config.name, key, {"id": incident_id})
        if incident_id is None:
            if n.kind is NotificationKind.RESOLVE:
                return DeliveryResult.delivered()  # nothing public is open for it
            trigger = n.model_copy(update={"kind": NotificationKind.TRIGGER})
            result, data = await self._call("POST", "/incidents",
                                            build_incident(self._config, trigger, text))
            if result.ok and isinstance(data, dict) and data.get("id"):
                await self._store.put_ref(self._config.name, key, {"id": str(data["id"])})
            return result
        if n.kind is NotificationKind.TRIGGER:
            return DeliveryResult.delivered()  # already created (redelivery)
        result, _ = await self._call("PATCH", f"/incidents/{incident_id}",
                                     build_incident(self._config, n, text))
        return result


def build(config: StatuspageConfig, ctx: SinkContext) -> StatuspageSink:
    return StatuspageSink(config, ctx)
