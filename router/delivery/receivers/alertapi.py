"""The Opsgenie Alert API v2 model, shared by `opsgenie` and its successor `jsm`.

create `POST {alerts}`; acknowledge / close / add note
`POST {alerts}/{alias}/{action}?identifierType=alias`, the alias URL-encoded; the incident's
dedup key is the alias, so a redelivered create only bumps the open alert's count. Auth
`Authorization: GenieKey <key>`. Answers are 202 (processed asynchronously).
Field limits (truncated, not rejected): message 130, alias 512, description 15,000,
tags 20 x 50, details 8,000 in total, entity 512, source 100, note 25,000.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

import jinja2
from pydantic import BaseModel, ConfigDict, SecretStr

from router.delivery.http import Http, Redactor, classify, dumps, http_call
from router.delivery.render import Renderer, first_link, truncate
from router.delivery.result import DeliveryResult
from router.model import Notification, NotificationKind, Severity

Priority = Literal["P1", "P2", "P3", "P4", "P5"]
DEFAULT_PRIORITIES: dict[Severity, Priority] = {
    Severity.SEV1: "P1",
    Severity.SEV2: "P2",
    Severity.SEV3: "P3",
    Severity.SEV4: "P4",
}
SOURCE = "incident-router"


class Responder(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["team", "user", "escalation", "schedule"]
    id: str | None = None
    name: str | None = None
    username: str | None = None

    def as_json(self) -> dict[str, str]:
        return self.model_dump(exclude_none=True)


def _details(n: Notification) -> dict[str, str]:
    """str -> str map, 8,000 chars in total (keys and values)."""
    first = n.alerts[0] if n.alerts else None
    raw: dict[str, str | None] = {
        "severity": n.severity.value,
        "incident_id": n.incident_id,
        "group_key": n.group_key,
        "runbook": first_link(n, "runbook_url"),
        "dashboard": first_link(n, "dashboard_url"),
        "source_url": first_link(n, "generator_url"),
        "alert": first.name if first else None,
        "alerts": str(len(n.alerts)) if n.alerts else None,
    }
    if first is not None:
        for k, v in first.labels.items():
            raw.setdefault(f"label.{k}", v)
    out: dict[str, str] = {}
    budget = 8000
    for key, value in raw.items():
        if not value:
            continue
        k, v = truncate(key, 100), truncate(value, 1000)
        if len(k) + len(v) > budget:
            break
        out[k] = v
        budget -= len(k) + len(v)
    return out


def _tags(n: Notification, extra: list[str]) -> list[str]:
    first = n.alerts[0] if n.alerts else None
    tags = [n.severity.value, *extra]
    if first is not None:
        tags += [t for t in (first.team, first.service) if t]
    seen: list[str] = []
    for t in tags:
        t = truncate(t, 50)
        if t not in seen:
            seen.append(t)
    return seen[:20]


def build_request(
    alerts_url: str,
    n: Notification,
    text: str,
    *,
    priorities: dict[Severity, Priority],
    responders: list[Responder],
    tags: list[str],
) -> tuple[str, dict[str, Any]]:
    """(url, body) for one notification."""
    alias = n.dedup_key[:512]
    if n.kind in (NotificationKind.TRIGGER, NotificationKind.REPEAT, NotificationKind.ESCALATE,
                  NotificationKind.PAGE):
        first = n.alerts[0] if n.alerts else None
        body: dict[str, Any] = {
            "message": truncate(f"[{n.severity.value}] {n.title}", 130),
            "alias": alias,
            "description": truncate(text, 15_000),
            "tags": _tags(n, tags),
            "details": _details(n),
            "source": SOURCE,
            "priority": priorities[n.severity],
        }
        entity = (first.service if first else None) or (first.name if first else None)
        if entity:
            body["entity"] = truncate(entity, 512)
        if responders:
            body["responders"] = [r.as_json() for r in responders]
        return alerts_url, body
    action = {
        NotificationKind.ACKNOWLEDGE: "acknowledge",
        NotificationKind.RESOLVE: "close",
    }.get(n.kind, "notes")
    body = {"source": SOURCE, "note": truncate(text, 25_000)}
    actor = n.details.get("actor")
    if actor and action != "notes":
        body["user"] = truncate(str(actor), 100)
    url = f"{alerts_url}/{quote(alias, safe='')}/{action}?identifierType=alias"
    return url, body


class AlertApiSink:
    def __init__(
        self,
        *,
        alerts_url: str,
        api_key: SecretStr,
        priorities: dict[Severity, Priority],
        responders: list[Responder],
        tags: list[str],
        templates: dict[str, str],
        http: Http,
    ) -> None:
        self._alerts_url = alerts_url
        self._key = api_key
        self._priorities = priorities
        self._responders = responders
        self._tags = tags
        self._http = http
        self._renderer = Renderer(templates)
        self._redact = Redactor([api_key.get_secret_value()])

    async def send(self, n: Notification) -> DeliveryResult:
        try:
            text = self._renderer.render(n).text
        except jinja2.TemplateError:
            return DeliveryResult.failed("template_error", retryable=False)
        url, body = build_request(self._alerts_url, n, text, priorities=self._priorities,
                                  responders=self._responders, tags=self._tags)
        answer = await http_call(
            self._http, "POST", url, body=dumps(body),
            headers={"Authorization": f"GenieKey {self._key.get_secret_value()}"},
        )
        if isinstance(answer, DeliveryResult):
            return answer
        return classify(answer, self._redact)
